//! The TLS block an operator already has: Java-style key and trust stores in PEM (Kafka's
//! `ssl.keystore.*` / `ssl.truststore.*`, ZooKeeper's `ssl.keyStore.*` / `ssl.trustStore.*`),
//! read as the CA file and one file holding the certificate chain and its private key.

use std::path::{Path, PathBuf};

use crate::properties::{Entry, PropertiesError};

/// One dialect's names for a store block.
#[derive(Debug, Clone, Copy)]
pub struct StoreKeys {
    /// The key store's file (certificate chain and private key, PEM).
    pub keystore: &'static str,
    /// The key store's type (must be PEM).
    pub keystore_type: &'static str,
    /// The trust store's file (the CA certificates, PEM).
    pub truststore: &'static str,
    /// The trust store's type (must be PEM).
    pub truststore_type: &'static str,
    /// The private key's password (encrypted keys are not read).
    pub key_password: &'static str,
}

/// Kafka's names.
pub const KAFKA: StoreKeys = StoreKeys {
    keystore: "ssl.keystore.location",
    keystore_type: "ssl.keystore.type",
    truststore: "ssl.truststore.location",
    truststore_type: "ssl.truststore.type",
    key_password: "ssl.key.password",
};

/// ZooKeeper's names.
pub const ZOOKEEPER: StoreKeys = StoreKeys {
    keystore: "ssl.keyStore.location",
    keystore_type: "ssl.keyStore.type",
    truststore: "ssl.trustStore.location",
    truststore_type: "ssl.trustStore.type",
    key_password: "ssl.keyStore.password",
};

/// The files a store block names: `(CA file, certificate-and-key file)`, or `None` when the
/// file has no store block. Both stores must be named and be PEM; an encrypted key is refused
/// with the command that decrypts it.
pub fn pem_stores(
    entries: &[Entry],
    path: &Path,
    keys: &StoreKeys,
) -> Result<Option<(PathBuf, PathBuf)>, PropertiesError> {
    let get = |key: &str| entries.iter().find(|e| e.key == key);
    let (keystore, truststore) = match (get(keys.keystore), get(keys.truststore)) {
        (None, None) => return Ok(None),
        (Some(k), Some(t)) => (k, t),
        (Some(e), None) | (None, Some(e)) => {
            return Err(PropertiesError::invalid(
                path,
                e,
                format!(
                    "{} and {} go together: the key store holds this server's certificate and key, the \
                     trust store the CA",
                    keys.keystore, keys.truststore
                ),
            ))
        }
    };
    for (store, type_key) in [(keystore, keys.keystore_type), (truststore, keys.truststore_type)] {
        let pem = get(type_key).is_some_and(|t| t.value.eq_ignore_ascii_case("PEM"));
        if !pem {
            return Err(PropertiesError::invalid(
                path,
                get(type_key).unwrap_or(store),
                format!(
                    "set {type_key}=PEM: Sluice reads PEM files (a JKS or PKCS12 store converts with \
                     `keytool -importkeystore -deststoretype PKCS12` and then `openssl pkcs12 -nodes`)"
                ),
            ));
        }
    }
    if let Some(e) = get(keys.key_password).filter(|e| !e.value.is_empty()) {
        return Err(PropertiesError::invalid(
            path,
            e,
            format!(
                "encrypted private keys are not read: decrypt it (`openssl pkey -in key.pem -out plain.pem`) \
                 and remove {}",
                keys.key_password
            ),
        ));
    }
    Ok(Some((PathBuf::from(&truststore.value), PathBuf::from(&keystore.value))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::properties::parse;

    fn stores(text: &str, keys: &StoreKeys) -> Result<Option<(PathBuf, PathBuf)>, String> {
        let path = Path::new("s.properties");
        let entries = parse(text, path).map_err(|e| e.to_string())?;
        pem_stores(&entries, path, keys).map_err(|e| e.to_string())
    }

    #[test]
    fn a_pem_store_block_names_the_ca_and_the_certificate_and_key() {
        let kafka = "ssl.keystore.type=PEM\nssl.keystore.location=/k.pem\nssl.truststore.type=pem\n\
                     ssl.truststore.location=/ca.pem\n";
        assert_eq!(stores(kafka, &KAFKA), Ok(Some(("/ca.pem".into(), "/k.pem".into()))));
        let zk = "ssl.keyStore.location=/k.pem\nssl.keyStore.type=PEM\nssl.trustStore.location=/ca.pem\n\
                  ssl.trustStore.type=PEM\n";
        assert_eq!(stores(zk, &ZOOKEEPER), Ok(Some(("/ca.pem".into(), "/k.pem".into()))));
        assert_eq!(stores("a=b\n", &KAFKA), Ok(None));
    }

    #[test]
    fn stores_that_are_not_pem_or_half_given_or_encrypted_are_refused_with_the_fix() {
        let jks = "ssl.keystore.location=/k.jks\nssl.truststore.location=/t.jks\n";
        let e = stores(jks, &KAFKA).expect_err("JKS");
        assert!(
            e.contains("s.properties:1") && e.contains("ssl.keystore.type=PEM") && e.contains("keytool"),
            "{e}"
        );
        let half = "ssl.keystore.type=PEM\nssl.keystore.location=/k.pem\n";
        assert!(stores(half, &KAFKA).expect_err("half").contains("go together"));
        let encrypted = "ssl.keystore.type=PEM\nssl.keystore.location=/k.pem\nssl.truststore.type=PEM\n\
                         ssl.truststore.location=/ca.pem\nssl.key.password=x\n";
        assert!(stores(encrypted, &KAFKA).expect_err("encrypted").contains("openssl pkey"));
    }
}
