//! The on-disk encoding of stored records: one version byte, then postcard. redb's and fjall's
//! byte values cannot fail to load (CRATES.md trap 6), so decoding is explicit and checked here.

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty {0} record")]
    Empty(&'static str),
    #[error("{name} record has unknown version {version}")]
    UnknownVersion { name: &'static str, version: u8 },
    #[error("{name} record is corrupt: {source}")]
    Corrupt {
        name: &'static str,
        source: postcard::Error,
    },
}

/// A record type with a format version. Older versions are turned into the current one by
/// [`Versioned::upgrade`]; a new version adds an arm there and a test that reads the old bytes.
pub trait Versioned: Serialize + DeserializeOwned {
    const NAME: &'static str;
    const VERSION: u8;

    /// Reads a record written by an older version. The default knows none.
    fn upgrade(version: u8, _body: &[u8]) -> Result<Self, CodecError> {
        Err(CodecError::UnknownVersion {
            name: Self::NAME,
            version,
        })
    }
}

pub fn encode<T: Versioned>(record: &T) -> Vec<u8> {
    let out = vec![T::VERSION];
    // postcard only fails on I/O or on types it cannot represent; ours are plain data.
    postcard::to_extend(record, out).unwrap_or_else(|e| panic!("encoding {}: {e}", T::NAME))
}

pub fn decode<T: Versioned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty(T::NAME))?;
    if version == T::VERSION {
        postcard::from_bytes(body).map_err(|source| CodecError::Corrupt {
            name: T::NAME,
            source,
        })
    } else {
        T::upgrade(version, body)
    }
}

/// Decodes the body of an older version with its own struct.
pub fn decode_body<T: DeserializeOwned>(name: &'static str, body: &[u8]) -> Result<T, CodecError> {
    postcard::from_bytes(body).map_err(|source| CodecError::Corrupt { name, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V2 {
        a: u32,
        b: String,
    }

    #[derive(Serialize, Deserialize)]
    struct V1 {
        a: u32,
    }

    impl Versioned for V2 {
        const NAME: &'static str = "test";
        const VERSION: u8 = 2;

        fn upgrade(version: u8, body: &[u8]) -> Result<Self, CodecError> {
            match version {
                1 => {
                    let old: V1 = decode_body(Self::NAME, body)?;
                    Ok(V2 {
                        a: old.a,
                        b: "default".into(),
                    })
                }
                _ => Err(CodecError::UnknownVersion {
                    name: Self::NAME,
                    version,
                }),
            }
        }
    }

    #[test]
    fn round_trips_and_upgrades_and_rejects() {
        let v = V2 {
            a: 7,
            b: "x".into(),
        };
        assert_eq!(decode::<V2>(&encode(&v)).unwrap(), v);

        let mut old = vec![1u8];
        old.extend(postcard::to_allocvec(&V1 { a: 9 }).unwrap());
        assert_eq!(decode::<V2>(&old).unwrap().b, "default");

        assert!(matches!(decode::<V2>(&[]), Err(CodecError::Empty(_))));
        assert!(matches!(
            decode::<V2>(&[9, 1]),
            Err(CodecError::UnknownVersion { version: 9, .. })
        ));
        assert!(matches!(
            decode::<V2>(&[2, 0xff]),
            Err(CodecError::Corrupt { .. })
        ));
    }
}
