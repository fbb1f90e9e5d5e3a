use super::*;
use crate::copy::{copy_object_pinned, CopyRequest, CopySettings};
use crate::store::list_all;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn default_checksum_is_crc64nvme() {
    // The check value of CRC-64/NVME for "123456789" is 0xae8b14860a799888.
    use base64::Engine;
    let expected =
        base64::engine::general_purpose::STANDARD.encode(0xae8b_1486_0a79_9888u64.to_be_bytes());
    assert_eq!(crc64nvme_base64(b"123456789"), expected);
}

#[test]
fn conditional_writes_and_versions() {
    block_on(async {
        let store = MemoryStore::new();
        let absent = WriteOptions {
            if_absent: true,
            ..WriteOptions::default()
        };
        let first = store.put("b", "k", Bytes::from("one"), &absent).await;
        assert!(matches!(first, Ok(PutResult::Written { .. })));
        let again = store.put("b", "k", Bytes::from("two"), &absent).await;
        assert_eq!(again.unwrap(), PutResult::PreconditionFailed);
        store
            .put("b", "k", Bytes::from("two"), &WriteOptions::default())
            .await
            .unwrap();
        let versions = store.versions("b", "k");
        assert_eq!(versions.len(), 2);
        let old = store
            .get("b", "k", versions[0].version_id.as_deref())
            .await
            .unwrap();
        assert_eq!(old.as_deref(), Some(&b"one"[..]));
    });
}

#[test]
fn pinned_copies() {
    block_on(async {
        let store = MemoryStore::new();
        let source = store.insert("src", "k", "abc");
        let cases = [
            (
                SourcePin {
                    version_id: source.version_id.clone(),
                    if_match_etag: None,
                },
                "copied",
            ),
            (
                SourcePin {
                    version_id: None,
                    if_match_etag: Some("not-it".into()),
                },
                "precondition",
            ),
            (
                SourcePin {
                    version_id: Some("v-none".into()),
                    if_match_etag: None,
                },
                "gone",
            ),
        ];
        for (pin, expected) in cases {
            let result = store
                .copy_object("src", "k", &pin, "dst", "k", &WriteOptions::default())
                .await
                .unwrap();
            let got = match result {
                CopyResult::Copied { .. } => "copied",
                CopyResult::PreconditionFailed => "precondition",
                CopyResult::SourceGone => "gone",
            };
            assert_eq!(got, expected, "{pin:?}");
        }
    });
}

#[test]
fn multipart_copies_get_part_count_etags() {
    block_on(async {
        let store = MemoryStore::new();
        let body: Vec<u8> = (0..25u8).collect();
        store.insert("src", "big", body.clone());
        let settings = CopySettings {
            multipart_threshold_bytes: 10,
            part_size_bytes: 10,
            concurrency: 2,
        };
        let request = CopyRequest {
            source_bucket: "src",
            source_key: "big",
            size: 25,
            pin: SourcePin::default(),
            bucket: "dst",
            key: "big",
            options: WriteOptions::default(),
        };
        let CopyResult::Copied { etag } = copy_object_pinned(&store, &settings, &request)
            .await
            .unwrap()
        else {
            panic!("not copied")
        };
        assert!(etag.ends_with("-3"), "{etag}");
        let copied = store.get("dst", "big", None).await.unwrap().unwrap();
        assert_eq!(copied.as_ref(), body.as_slice());
    });
}

#[test]
fn listings_page_in_key_order() {
    block_on(async {
        let store = MemoryStore::with_page_size(2);
        for key in ["t/c", "t/a", "u/x", "t/b", "s/z"] {
            store.insert("b", key, key);
        }
        let page = store.list_page("b", "t/", None).await.unwrap();
        assert_eq!(page.objects.len(), 2);
        assert!(page.next.is_some());
        let keys: Vec<String> = list_all(&store, "b", "t/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(keys, ["t/a", "t/b", "t/c"]);
    });
}
