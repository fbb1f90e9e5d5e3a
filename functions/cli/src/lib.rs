//! What the `lifeboat` command shares with the test harness and the disaster drills: the one
//! way to start the local AWS ([`local_aws`]), the one driver from an SQS queue into the
//! replicator ([`queue`]), and where the project's Python tools live ([`Tools`]).

use std::path::{Path, PathBuf};

pub mod local_aws;
pub mod queue;

/// The repository root (the workspace this crate was built in).
pub fn repo_root() -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    repo.canonicalize().unwrap_or(repo)
}

/// Where the project's Python tools are: the virtualenv `make setup` makes (moto, deltalake,
/// boto3), else whatever is on PATH.
#[derive(Clone, Debug)]
pub struct Tools {
    /// The virtualenv's `bin` directory, when there is one.
    bin: Option<PathBuf>,
}

impl Tools {
    /// `venv` if given, else `LIFEBOAT_VENV`, else the repository's `.venv`, else PATH.
    pub fn find(venv: Option<&Path>) -> Self {
        let venv = venv
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("LIFEBOAT_VENV").map(PathBuf::from))
            .or_else(|| Some(repo_root().join(".venv")).filter(|v| v.join("bin/python").exists()));
        Tools {
            bin: venv.map(|v| v.join("bin")),
        }
    }

    /// The virtualenv at `venv` (its `bin/python` must exist).
    pub fn venv(venv: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(
            venv.join("bin/python").exists(),
            "{} is missing: run `make setup` first",
            venv.join("bin/python").display()
        );
        Ok(Tools {
            bin: Some(venv.join("bin")),
        })
    }

    /// `name` from the virtualenv if it is there, else the bare name (found on PATH).
    pub fn tool(&self, name: &str) -> PathBuf {
        match &self.bin {
            Some(bin) if bin.join(name).exists() => bin.join(name),
            _ => PathBuf::from(name),
        }
    }

    pub fn python(&self) -> PathBuf {
        self.tool("python")
    }
}

/// The Python Delta helper (tests/py/delta_tool.py): writes, reads and compares real Delta
/// tables with `deltalake` and DuckDB, and does the S3 chores of the demo and the tests.
pub fn delta_tool() -> PathBuf {
    repo_root().join("tests/py/delta_tool.py")
}
