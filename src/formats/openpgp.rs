//! OpenPGP, through the `pgp` crate (rpgp, the library the `rpm` crate signs and
//! verifies with): keyrings read from key files (ASCII-armoured or binary, several keys
//! per file), detached signatures checked against a keyring, and what a signature says
//! of its issuer (key ID, algorithm) without any key.
//!
//! Supported: v4 and v6 signatures by RSA, DSA, ECDSA and EdDSA (Ed25519, legacy and
//! RFC 9580 forms) keys, made by a primary key or a subkey; the issuer is matched by
//! the fingerprint or key ID the signature names, or, when it names none, by trying
//! every key. v6 keys (RFC 9580) are read like v4 ones. A package's header signatures
//! (several in rpm 6's OPENPGP tag) are judged by [`check_header`].

use std::io::Cursor;

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::packet::Signature;
use pgp::types::{KeyDetails, VerifyingKey};

/// Why a key or a signature could not be used, or a signature does not hold.
#[derive(Debug, thiserror::Error)]
pub enum PgpError {
    #[error("{file}: no OpenPGP public key could be read from it ({message}): give an ASCII-armoured or binary public key file, as `gpg --export [--armor]` writes")]
    BadKey { file: String, message: String },
    #[error("not an OpenPGP signature ({0})")]
    BadSignature(String),
    /// Signed, but by none of the keys trusted.
    #[error("signed by key {found}, not among the trusted keys ({expected})")]
    UnknownKey { found: String, expected: String },
    /// Made by a trusted key, but over other bytes (or damaged).
    #[error("the signature by key {key} does not match the signed bytes ({message})")]
    Mismatch { key: String, message: String },
}

/// What a signature says of itself: the issuer's key ID (16 lower-case hex digits;
/// `unknown` when it names none) and its algorithm (`RSA`, `EdDSA`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureInfo {
    pub key_id: String,
    pub algorithm: String,
}

/// Trusted public keys.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

/// Reads the first signature in `bytes` (armoured or binary).
fn parse_signature(bytes: &[u8]) -> Result<Signature, PgpError> {
    DetachedSignature::from_reader_single(Cursor::new(bytes))
        .map(|(s, _)| s.signature)
        .map_err(|e| PgpError::BadSignature(e.to_string()))
}

fn algorithm_name(alg: PublicKeyAlgorithm) -> String {
    match alg {
        PublicKeyAlgorithm::RSA | PublicKeyAlgorithm::RSASign => "RSA".into(),
        PublicKeyAlgorithm::DSA => "DSA".into(),
        PublicKeyAlgorithm::ECDSA => "ECDSA".into(),
        PublicKeyAlgorithm::EdDSALegacy | PublicKeyAlgorithm::Ed25519 => "EdDSA".into(),
        PublicKeyAlgorithm::Ed448 => "Ed448".into(),
        other => format!("{other:?}"),
    }
}

/// The key ID a fingerprint stands for (v4: its last 8 bytes; v6: its first 8).
fn key_id_of_fingerprint(fp: &[u8]) -> Option<String> {
    match fp.len() {
        20 => Some(hex::encode(&fp[12..])),
        32 => Some(hex::encode(&fp[..8])),
        _ => None,
    }
}

fn info_of(sig: &Signature) -> SignatureInfo {
    let key_id = sig
        .issuer_fingerprint()
        .first()
        .and_then(|fp| key_id_of_fingerprint(fp.as_bytes()))
        .or_else(|| sig.issuer_key_id().first().map(|k| k.to_string()))
        .unwrap_or_else(|| "unknown".to_string());
    SignatureInfo {
        key_id,
        algorithm: sig
            .config()
            .map(|c| algorithm_name(c.pub_alg))
            .unwrap_or_else(|| "unknown".into()),
    }
}

/// The issuer and algorithm of the signature in `bytes`, without checking it.
pub fn signature_info(bytes: &[u8]) -> Result<SignatureInfo, PgpError> {
    Ok(info_of(&parse_signature(bytes)?))
}

impl Keyring {
    /// Adds every public key in `bytes` (armoured or binary), read from `file` (named in
    /// errors); at least one must be readable.
    pub fn add(&mut self, bytes: &[u8], file: &str) -> Result<(), PgpError> {
        let bad = |message: String| PgpError::BadKey {
            file: file.to_string(),
            message,
        };
        let (keys, _) = SignedPublicKey::from_reader_many(Cursor::new(bytes))
            .map_err(|e| bad(e.to_string()))?;
        let mut added = 0;
        let mut last_error = None;
        for key in keys {
            match key {
                Ok(key) => {
                    self.keys.push(key);
                    added += 1;
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        if added == 0 {
            return Err(bad(
                last_error.unwrap_or_else(|| "the file holds no key".into())
            ));
        }
        Ok(())
    }

    /// A keyring of the keys in the files at `paths`.
    pub fn load(paths: &[std::path::PathBuf]) -> Result<Keyring, PgpError> {
        let mut ring = Keyring::default();
        for path in paths {
            let file = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|e| PgpError::BadKey {
                file: file.clone(),
                message: e.to_string(),
            })?;
            ring.add(&bytes, &file)?;
        }
        Ok(ring)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key IDs of every key and subkey, for messages.
    pub fn key_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for k in &self.keys {
            ids.push(k.primary_key.legacy_key_id().to_string());
            for s in &k.public_subkeys {
                ids.push(s.key.legacy_key_id().to_string());
            }
        }
        ids
    }

    /// Checks `signature` (armoured or binary) over `data`; returns who signed.
    pub fn verify(&self, data: &[u8], signature: &[u8]) -> Result<SignatureInfo, PgpError> {
        let sig = parse_signature(signature)?;
        let info = info_of(&sig);
        let fingerprints: Vec<Vec<u8>> = sig
            .issuer_fingerprint()
            .iter()
            .map(|f| f.as_bytes().to_vec())
            .collect();
        let key_ids: Vec<String> = sig.issuer_key_id().iter().map(|k| k.to_string()).collect();
        let names_issuer = !fingerprints.is_empty() || !key_ids.is_empty();
        let matches = |fp: &[u8], id: &str| {
            !names_issuer || fingerprints.iter().any(|f| f == fp) || key_ids.iter().any(|k| k == id)
        };
        let mut mismatch = None;
        let mut try_key = |key: &dyn VerifyingKeyRef, id: String| match key.check(&sig, data) {
            Ok(()) => Some(Ok(SignatureInfo {
                key_id: id,
                algorithm: info.algorithm.clone(),
            })),
            Err(message) => {
                if names_issuer {
                    mismatch = Some(PgpError::Mismatch { key: id, message });
                }
                None
            }
        };
        for k in &self.keys {
            let id = k.primary_key.legacy_key_id().to_string();
            if matches(k.primary_key.fingerprint().as_bytes(), &id) {
                if let Some(done) = try_key(&k.primary_key, id) {
                    return done;
                }
            }
            for s in &k.public_subkeys {
                let id = s.key.legacy_key_id().to_string();
                if matches(s.key.fingerprint().as_bytes(), &id) {
                    if let Some(done) = try_key(&s.key, id) {
                        return done;
                    }
                }
            }
        }
        Err(mismatch.unwrap_or_else(|| PgpError::UnknownKey {
            found: info.key_id.clone(),
            expected: self.expected(),
        }))
    }

    /// The trusted key IDs, for messages.
    fn expected(&self) -> String {
        if self.keys.is_empty() {
            "none configured".into()
        } else {
            self.key_ids().join(", ")
        }
    }
}

/// A key a signature can be checked with (a primary key or a subkey).
trait VerifyingKeyRef {
    fn check(&self, sig: &Signature, data: &[u8]) -> Result<(), String>;
}

impl<T: VerifyingKey> VerifyingKeyRef for T {
    fn check(&self, sig: &Signature, data: &[u8]) -> Result<(), String> {
        sig.verify(self, Cursor::new(data))
            .map_err(|e| e.to_string())
    }
}

/// What a package's header signature is.
#[derive(Debug)]
pub enum HeaderVerdict {
    /// The package carries no header signature.
    Unsigned,
    /// Signed by this key: checked against the keyring when one was given, else only
    /// read.
    Signed(SignatureInfo),
    /// Signed, but not by a trusted key, or not over this header, or unreadable.
    Bad(PgpError),
}

/// The verdict on `head`'s signatures; checked against `keyring` when given.
///
/// With several signatures (rpm 6), the package is signed by the first trusted key
/// whose signature verifies, as rpm 6 accepts it; a signature by a trusted key that
/// does not verify makes the package bad whatever the others say, since its header is
/// then not what that key signed. Without a keyring, the first signature is read.
pub fn check_header(
    head: &crate::formats::rpmcheck::HeaderSignature,
    keyring: Option<&Keyring>,
) -> HeaderVerdict {
    let Some(first) = head.signatures.first() else {
        return HeaderVerdict::Unsigned;
    };
    let Some(ring) = keyring else {
        return match signature_info(first) {
            Ok(info) => HeaderVerdict::Signed(info),
            Err(e) => HeaderVerdict::Bad(e),
        };
    };
    let mut verified = None;
    let mut unknown = Vec::new();
    let mut unreadable = None;
    for signature in &head.signatures {
        match ring.verify(&head.header, signature) {
            Ok(info) => {
                verified.get_or_insert(info);
            }
            Err(e @ PgpError::Mismatch { .. }) => return HeaderVerdict::Bad(e),
            Err(PgpError::UnknownKey { found, .. }) => unknown.push(found),
            Err(e) => {
                unreadable.get_or_insert(e);
            }
        }
    }
    match (verified, unreadable) {
        (Some(info), _) => HeaderVerdict::Signed(info),
        (None, Some(e)) if unknown.is_empty() => HeaderVerdict::Bad(e),
        _ => HeaderVerdict::Bad(PgpError::UnknownKey {
            found: unknown.join(", "),
            expected: ring.expected(),
        }),
    }
}

/// A secret key that signs: the signing-capable subkey of the first key in its file,
/// else its primary key, unlocked with its passphrase.
pub struct SecretSigner {
    key: pgp::composed::SignedSecretKey,
    /// Index of the signing subkey, or `None` for the primary key.
    subkey: Option<usize>,
    passphrase: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for SecretSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretSigner")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

fn can_sign(sigs: &[Signature]) -> bool {
    let flagged: Vec<&Signature> = sigs
        .iter()
        .filter(|s| {
            s.config().is_some_and(|c| {
                c.hashed_subpackets()
                    .any(|p| matches!(p.data, pgp::packet::SubpacketData::KeyFlags(_)))
            })
        })
        .collect();
    flagged.is_empty() || flagged.iter().any(|s| s.key_flags().sign())
}

impl SecretSigner {
    /// Reads the secret key in `bytes` (armoured or binary, from `file`, named in
    /// errors) and checks that `passphrase` unlocks it by making one signature.
    pub fn load(
        bytes: &[u8],
        file: &str,
        passphrase: zeroize::Zeroizing<Vec<u8>>,
    ) -> Result<SecretSigner, PgpError> {
        let bad = |message: String| PgpError::BadKey {
            file: file.to_string(),
            message,
        };
        let (key, _) = pgp::composed::SignedSecretKey::from_reader_single(Cursor::new(bytes))
            .map_err(|e| bad(format!("no OpenPGP secret key in it: {e}")))?;
        let subkey = key
            .secret_subkeys
            .iter()
            .position(|s| can_sign(&s.signatures));
        let signer = SecretSigner {
            key,
            subkey,
            passphrase,
        };
        signer
            .sign(b"cairn")
            .map_err(|e| bad(format!("it cannot sign (is the passphrase right?): {e}")))?;
        Ok(signer)
    }

    /// The fingerprint of the key that signs (a subkey's, when a subkey signs).
    pub fn fingerprint(&self) -> String {
        match self.subkey {
            Some(i) => hex::encode(self.key.secret_subkeys[i].key.fingerprint().as_bytes()),
            None => hex::encode(self.key.primary_key.fingerprint().as_bytes()),
        }
    }

    /// The public key (primary and subkeys), ASCII-armoured, for clients.
    pub fn public_armored(&self) -> Result<Vec<u8>, PgpError> {
        self.key
            .to_public_key()
            .to_armored_bytes(pgp::composed::ArmorOptions::default())
            .map_err(|e| PgpError::BadSignature(e.to_string()))
    }

    /// An ASCII-armoured detached signature over `data`.
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, PgpError> {
        let password = pgp::types::Password::from(self.passphrase.as_slice());
        let hash = pgp::crypto::hash::HashAlgorithm::Sha256;
        let rng = rand::thread_rng();
        let signature = match self.subkey {
            Some(i) => DetachedSignature::sign_binary_data(
                rng,
                &self.key.secret_subkeys[i].key,
                &password,
                hash,
                data,
            ),
            None => DetachedSignature::sign_binary_data(
                rng,
                &self.key.primary_key,
                &password,
                hash,
                data,
            ),
        }
        .map_err(|e| PgpError::BadSignature(e.to_string()))?;
        signature
            .to_armored_bytes(pgp::composed::ArmorOptions::default())
            .map_err(|e| PgpError::BadSignature(e.to_string()))
    }
}
