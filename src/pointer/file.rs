//! The embedded default pointer: a JSON file in the local store, replaced atomically by rename.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{Flipped, Pointer, PointerError, PointerResult, Promotion};

/// Promotions kept, as many as SSM keeps of a parameter's history.
const HISTORY_LIMIT: usize = 100;

pub struct FilePointer {
    path: PathBuf,
}

#[derive(Default, Serialize, Deserialize)]
struct PointerFile {
    history: Vec<Promotion>,
}

impl FilePointer {
    /// The pointer of the site at `prefix` in the store at `store_dir`.
    pub fn new(store_dir: &Path, prefix: &str) -> Self {
        let mut path = store_dir.join("pointers");
        path.extend(prefix.split('/').filter(|s| !s.is_empty()));
        Self { path: path.join("active.json") }
    }

    async fn load(&self) -> PointerResult<PointerFile> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| PointerError::Damaged { what: format!("pointer {}", self.path.display()), source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PointerFile::default()),
            Err(e) => Err(file_error(format!("reading pointer {}", self.path.display()))(e)),
        }
    }
}

/// A failed file operation on the pointer, `doing` saying which.
fn file_error(doing: String) -> impl FnOnce(std::io::Error) -> PointerError {
    move |source| PointerError::File { doing, source }
}

#[async_trait]
impl Pointer for FilePointer {
    async fn read(&self) -> PointerResult<Option<String>> {
        Ok(self.load().await?.history.pop().map(|p| p.version))
    }

    async fn write(&self, version: &str, note: &str) -> PointerResult<Flipped> {
        let mut file = self.load().await?;
        file.history.push(Promotion {
            version: version.to_owned(),
            at: Some(chrono::Utc::now()),
            note: note.to_owned(),
            invalidation_pending: false,
        });
        let excess = file.history.len().saturating_sub(HISTORY_LIMIT);
        file.history.drain(..excess);
        let dir = self.path.parent().expect("pointer path has a parent");
        tokio::fs::create_dir_all(dir).await.map_err(file_error(format!("creating {}", dir.display())))?;
        let tmp = dir.join(format!(".active.{:016x}", rand::random::<u64>()));
        let body = serde_json::to_vec_pretty(&file).expect("a pointer file always serialises");
        tokio::fs::write(&tmp, body).await.map_err(file_error(format!("writing {}", tmp.display())))?;
        tokio::fs::rename(&tmp, &self.path).await.map_err(file_error(format!("replacing {}", self.path.display())))?;
        Ok(Flipped::default())
    }

    async fn history(&self) -> PointerResult<Vec<Promotion>> {
        Ok(self.load().await?.history)
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn history_is_kept_in_order_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let pointer = FilePointer::new(dir.path(), "a/b");
        assert_eq!(pointer.read().await.unwrap(), None);
        for version in 0..HISTORY_LIMIT + 5 {
            pointer.write(&version.to_string(), "by test").await.unwrap();
        }
        assert_eq!(pointer.read().await.unwrap().as_deref(), Some("104"));
        let history = pointer.history().await.unwrap();
        assert_eq!(history.len(), HISTORY_LIMIT);
        assert_eq!((history[0].version.as_str(), history[0].note.as_str()), ("5", "by test"));
        assert!(dir.path().join("pointers/a/b/active.json").exists());
    }

    #[tokio::test]
    async fn a_damaged_pointer_file_is_named_with_its_cause() {
        let dir = tempfile::tempdir().unwrap();
        let pointer = FilePointer::new(dir.path(), "");
        std::fs::create_dir_all(dir.path().join("pointers")).unwrap();
        std::fs::write(&pointer.path, "{").unwrap();
        let err = pointer.read().await.unwrap_err();
        assert!(matches!(err, PointerError::Damaged { .. }), "{err}");
        let text = format!("{:#}", anyhow::Error::new(err));
        let expected = format!("pointer {} is damaged: EOF while parsing an object", pointer.path.display());
        assert!(text.starts_with(&expected), "{text}");
    }
}
