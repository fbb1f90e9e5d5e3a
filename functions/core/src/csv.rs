//! CSV records as S3 writes them (inventory lists, Batch Operations completion reports):
//! RFC 4180, comma-separated, fields optionally in double quotes, `""` for a quote inside
//! quotes, line breaks allowed inside quotes, `\n` or `\r\n` between records.

use crate::error::{Error, Result};

/// Every record of `text`; a blank line is no record.
pub fn records(text: &str) -> Result<Vec<Vec<String>>> {
    let mut out = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut quoted = false; // inside quotes
    let mut touched = false; // the record has a field (even an empty one)
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                quoted = true;
                touched = true;
            }
            '"' => {
                return Err(Error::bad_input(format!(
                    "CSV: a quote inside the unquoted field {field:?}"
                )))
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                touched = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if touched || !field.is_empty() {
                    record.push(std::mem::take(&mut field));
                    out.push(std::mem::take(&mut record));
                }
                touched = false;
            }
            _ => {
                field.push(c);
                touched = true;
            }
        }
    }
    if quoted {
        return Err(Error::bad_input("CSV: a quoted field is not closed"));
    }
    if touched || !field.is_empty() {
        record.push(field);
        out.push(record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_as_s3_writes_them() {
        let cases: &[(&str, &str, &[&[&str]])] = &[
            ("plain", "a,b,c\n", &[&["a", "b", "c"]]),
            ("no final newline", "a,b", &[&["a", "b"]]),
            ("crlf", "a,b\r\nc,d\r\n", &[&["a", "b"], &["c", "d"]]),
            ("empty fields", "a,,\n", &[&["a", "", ""]]),
            ("quoted", "\"a\",\"b,c\"\n", &[&["a", "b,c"]]),
            (
                "doubled quotes",
                "\"say \"\"hi\"\"\",x\n",
                &[&["say \"hi\"", "x"]],
            ),
            ("newline in quotes", "\"a\nb\",c\n", &[&["a\nb", "c"]]),
            ("empty quoted", "\"\",x\n", &[&["", "x"]]),
            ("blank lines", "\na\n\nb\n", &[&["a"], &["b"]]),
            ("nothing", "", &[]),
        ];
        for (name, text, expected) in cases {
            let got = records(text).unwrap();
            let expected: Vec<Vec<String>> = expected
                .iter()
                .map(|r| r.iter().map(|s| s.to_string()).collect())
                .collect();
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn refuses_broken_quotes() {
        for text in ["\"open,x\n", "ab\"c,d\n"] {
            assert!(records(text).is_err(), "{text:?}");
        }
    }
}
