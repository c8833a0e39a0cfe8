//! The encrypted `resource` of a WeChat Pay callback: `AEAD_AES_256_GCM` with the merchant's
//! APIv3 key (32 bytes), the resource's 12-byte `nonce` and its `associated_data`; the
//! ciphertext is base64 of the encrypted bytes followed by the 16-byte tag.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use base64::{Engine, engine::general_purpose::STANDARD};

use crate::{Error, Result};

/// Decrypts a resource to its JSON text.
pub fn decrypt(
    apiv3_key: &[u8],
    nonce: &str,
    associated_data: &str,
    ciphertext_b64: &str,
) -> Result<Vec<u8>> {
    if apiv3_key.len() != 32 {
        return Err(Error::KeyInvalid("the APIv3 key has 32 bytes".into()));
    }
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, apiv3_key).map_err(|_| Error::DecryptFailed)?,
    );
    let nonce =
        Nonce::try_assume_unique_for_key(nonce.as_bytes()).map_err(|_| Error::DecryptFailed)?;
    let mut data = STANDARD
        .decode(ciphertext_b64.trim())
        .map_err(|_| Error::DecryptFailed)?;
    let plain = key
        .open_in_place(nonce, Aad::from(associated_data.as_bytes()), &mut data)
        .map_err(|_| Error::DecryptFailed)?;
    Ok(plain.to_vec())
}
