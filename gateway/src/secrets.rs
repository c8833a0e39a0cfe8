//! Secret references stored in the database (`env:NAME`, `file:/path`), resolved when used so a
//! rotated file takes effect without a restart.

use minigate_resolvers::{SecretError, Secrets};
use secrecy::SecretString;

pub struct EnvAndFiles;

impl Secrets for EnvAndFiles {
    fn resolve(&self, reference: &str) -> Result<SecretString, SecretError> {
        let fail = |reason: &str| SecretError {
            reference: reference.to_owned(),
            reason: reason.to_owned(),
        };
        match reference.split_once(':') {
            Some(("env", name)) => std::env::var(name)
                .map(SecretString::from)
                .map_err(|_| fail("environment variable not set")),
            Some(("file", path)) => std::fs::read_to_string(path)
                .map(|s| SecretString::from(s.trim_end_matches(['\n', '\r']).to_owned()))
                .map_err(|e| fail(&e.kind().to_string())),
            _ => Err(fail("not env:NAME or file:/path")),
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn files_are_read_without_their_trailing_newline() {
        let p = std::env::temp_dir().join(format!("minigate-secret-{}", uuid::Uuid::new_v4()));
        std::fs::write(&p, "s3cret\n").unwrap();
        let s = EnvAndFiles
            .resolve(&format!("file:{}", p.display()))
            .unwrap();
        assert_eq!(s.expose_secret(), "s3cret");
        std::fs::remove_file(&p).unwrap();
        let err = EnvAndFiles
            .resolve(&format!("file:{}", p.display()))
            .unwrap_err();
        assert!(!err.to_string().contains("s3cret"));
        assert!(EnvAndFiles.resolve("plain-secret").is_err());
        assert!(
            EnvAndFiles
                .resolve("env:MINIGATE_SURELY_UNSET_VARIABLE")
                .is_err()
        );
    }
}
