//! Paths in the run vocabulary's JSON (jobs, events, stored configs) survive any bytes: a path
//! that is valid UTF-8 is a plain string, exactly as before (so run ids do not change); any
//! other (a file name from a Windows archive, say) is `{"bytes": "<hex>"}`, its exact bytes.
//! Use with `#[serde(with = "crate::run::path")]` or `crate::run::path::option`.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Text(String),
    Bytes { bytes: String },
}

fn repr(path: &Path) -> Repr {
    match path.to_str() {
        Some(s) => Repr::Text(s.to_string()),
        None => Repr::Bytes {
            bytes: raw(path).iter().map(|b| format!("{b:02x}")).collect(),
        },
    }
}

/// The path's bytes: exact on Unix; elsewhere (where paths are not bytes) its UTF-8 text.
pub fn raw(path: &Path) -> Vec<u8> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    }
    #[cfg(not(unix))]
    {
        path.to_string_lossy().into_owned().into_bytes()
    }
}

/// The path with these bytes (the inverse of [`raw`]).
pub fn from_raw(bytes: Vec<u8>) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        PathBuf::from(std::ffi::OsString::from_vec(bytes))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn unrepr<E: serde::de::Error>(r: Repr) -> Result<PathBuf, E> {
    match r {
        Repr::Text(s) => Ok(PathBuf::from(s)),
        Repr::Bytes { bytes } => {
            if bytes.len() % 2 != 0 {
                return Err(E::custom("a path's hex bytes have an odd length"));
            }
            let raw = (0..bytes.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&bytes[i..i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| E::custom(format!("a path's hex bytes are not hex: {e}")))?;
            Ok(from_raw(raw))
        }
    }
}

pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    repr(path).serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    unrepr(Repr::deserialize(d)?)
}

/// The same for `Option<PathBuf>` (`null` when absent).
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        path.as_deref().map(repr).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        Option::<Repr>::deserialize(d)?
            .map(unrepr::<D::Error>)
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "crate::run::path")]
        p: PathBuf,
        #[serde(with = "crate::run::path::option", default)]
        q: Option<PathBuf>,
    }

    #[test]
    fn utf8_paths_are_plain_strings_as_before() {
        let h = Holder {
            p: "data/a b/ü.png".into(),
            q: None,
        };
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, r#"{"p":"data/a b/ü.png","q":null}"#);
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), h);
        // Old JSON without the optional field reads too.
        let old: Holder = serde_json::from_str(r#"{"p":"x"}"#).unwrap();
        assert_eq!(old.q, None);
    }

    #[cfg(unix)]
    #[test]
    fn any_bytes_round_trip_exactly() {
        let odd = from_raw(b"train/a/caf\xe9 \xff.jpg".to_vec());
        assert!(odd.to_str().is_none());
        let h = Holder {
            p: odd.clone(),
            q: Some(odd.clone()),
        };
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.contains(r#"{"bytes":"#), "{json}");
        let back: Holder = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        assert_eq!(raw(&back.p), b"train/a/caf\xe9 \xff.jpg");
        assert!(serde_json::from_str::<Holder>(r#"{"p":{"bytes":"f"}}"#).is_err());
    }
}
