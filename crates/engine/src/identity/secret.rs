//! Key material: API key ids, secrets and the tokens that carry both; a secret's hash
//! (what a bearer check compares) and its sealed form (what SigV4 needs: the secret
//! itself, encrypted under the node's master key so that the store alone reveals none).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{self, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// Every key id starts so (as AWS's start with `AKIA`), then 16 characters of base32.
pub const ID_PREFIX: &str = "WK";
const ID_CHARS: usize = 16;
const SECRET_CHARS: usize = 40;
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const NONCE_LEN: usize = 12;

/// A freshly made key: its id and its secret (shown once, then only its hash and sealed
/// form are kept).
pub struct NewSecret {
    pub id: String,
    pub secret: String,
}

impl NewSecret {
    /// The bearer token: `<id>.<secret>`.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

/// The system's random source failed (it does not, on Linux, but it is fallible).
#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed")]
pub struct RandomFailed;

fn random<const N: usize>() -> Result<[u8; N], RandomFailed> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).map_err(|_| RandomFailed)?;
    Ok(bytes)
}

/// Makes a new key id and secret from the system's random source.
pub fn generate() -> Result<NewSecret, RandomFailed> {
    let id_bytes: [u8; ID_CHARS] = random()?;
    let id: String = ID_PREFIX
        .chars()
        .chain(id_bytes.iter().map(|b| BASE32[usize::from(b % 32)] as char))
        .collect();
    let secret = URL_SAFE_NO_PAD.encode(random::<30>()?);
    Ok(NewSecret { id, secret })
}

/// Whether `id` has the shape of a key id.
pub fn is_key_id(id: &str) -> bool {
    id.len() == ID_PREFIX.len() + ID_CHARS
        && id.starts_with(ID_PREFIX)
        && id[ID_PREFIX.len()..].bytes().all(|b| BASE32.contains(&b))
}

fn is_secret(secret: &str) -> bool {
    secret.len() == SECRET_CHARS
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits a bearer token into its key id and secret; `None` when it is not shaped
/// like a Wisp key.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    (is_key_id(id) && is_secret(secret)).then_some((id, secret))
}

/// What the store keeps to check a bearer secret: its SHA-256. (The secret is 240
/// random bits; a slow password hash would add cost to every request and nothing
/// against guessing.)
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// The node's master key: seals key secrets at rest (ChaCha20-Poly1305). It lives in
/// the data directory beside the store, not in it; nodes of one cluster share it.
#[derive(Clone)]
pub struct MasterKey {
    bytes: [u8; 32],
    key: std::sync::Arc<LessSafeKey>,
}

/// A sealed secret that does not open under this master key.
#[derive(Debug, thiserror::Error)]
#[error("a sealed key secret does not open under this node's master key")]
pub struct Unsealable;

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> Result<MasterKey, RandomFailed> {
        MasterKey::from_bytes(random()?).ok_or(RandomFailed)
    }

    fn from_bytes(bytes: [u8; 32]) -> Option<MasterKey> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &bytes).ok()?;
        Some(MasterKey {
            bytes,
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
        })
    }

    /// The master key written as text (64 hex digits), as the data directory keeps it.
    pub fn to_text(&self) -> String {
        hex::encode(self.bytes)
    }

    /// Reads a master key written by [`MasterKey::to_text`].
    pub fn from_text(text: &str) -> Option<MasterKey> {
        let bytes = hex::decode(text.trim()).ok()?;
        MasterKey::from_bytes(bytes.try_into().ok()?)
    }

    /// A key derived from this one for `purpose` (HMAC-SHA256 of the purpose under the
    /// master key): what a node computes the same way as every other node of a cluster.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &self.bytes);
        let tag = ring::hmac::sign(&key, purpose.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Seals `secret` bound to its key `id`: nonce, then ciphertext and tag.
    pub fn seal(&self, id: &str, secret: &str) -> Result<Vec<u8>, RandomFailed> {
        let nonce: [u8; NONCE_LEN] = random()?;
        let mut data = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(id), &mut data)
            .map_err(|_| RandomFailed)?;
        let mut sealed = nonce.to_vec();
        sealed.append(&mut data);
        Ok(sealed)
    }

    /// Opens what [`MasterKey::seal`] sealed for key `id`.
    pub fn open(&self, id: &str, sealed: &[u8]) -> Result<String, Unsealable> {
        if sealed.len() < NONCE_LEN + aead::MAX_TAG_LEN {
            return Err(Unsealable);
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(id), &mut data)
            .map_err(|_| Unsealable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| Unsealable)
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_keys_parse_back_and_differ() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.secret, b.secret);
        assert!(is_key_id(&a.id), "{}", a.id);
        let token = a.token();
        assert_eq!(parse_token(&token), Some((a.id.as_str(), a.secret.as_str())));
    }

    #[test]
    fn tokens_of_another_shape_are_refused() {
        let good = generate().unwrap();
        for bad in [
            "",
            "WK",
            good.id.as_str(),
            &format!("{}.", good.id),
            &format!("{}.{}x", good.id, good.secret),
            &format!("wk{}.{}", &good.id[2..], good.secret),
            &format!("{}.{}", good.id, good.secret.replace(|_: char| true, "!")),
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_id() {
        let master = MasterKey::generate().unwrap();
        let sealed = master.seal("WKAAAA", "s3cret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"s3cret"));
        assert_eq!(master.open("WKAAAA", &sealed).unwrap(), "s3cret");
        assert!(master.open("WKBBBB", &sealed).is_err());
        assert!(MasterKey::generate().unwrap().open("WKAAAA", &sealed).is_err());
        let again = MasterKey::from_text(&master.to_text()).unwrap();
        assert_eq!(again.open("WKAAAA", &sealed).unwrap(), "s3cret");
        assert!(MasterKey::from_text("abc").is_none());
    }
}
