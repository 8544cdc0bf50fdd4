//! `GET /` of Kuma's REST API: the index that says which Kuma answers
//! (`pkg/api-server/index_endpoints.go`: `{"clusterId", "gui", "hostname", "instanceId", "product", "version",
//! "basedOnKuma"?}`). Kong Mesh reports its own version
//! in `version` and the Kuma it is built on in `basedOnKuma`.

#[cfg(feature = "sources")]
use super::{SourceError, rest::KumaApi};

#[cfg(feature = "sources")]
impl KumaApi {
    /// The Kuma version the control plane runs: `basedOnKuma` when present (Kong
    /// Mesh), else `version`.
    pub async fn kuma_version(&self) -> Result<String, SourceError> {
        let url = format!("{}/", self.base());
        let body = self.http().get(&url).await?;
        parse_index(&body).map_err(|reason| SourceError::Decode { url, reason })
    }
}

/// The version in an index body.
pub fn parse_index(body: &[u8]) -> Result<String, String> {
    let index: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the API index is not JSON: {e}"))?;
    ["basedOnKuma", "version"]
        .iter()
        .find_map(|k| index.get(k).and_then(|v| v.as_str()).filter(|v| !v.is_empty()))
        .map(str::to_owned)
        .ok_or_else(|| "the API index names no version".to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse_index;

    #[test]
    fn kuma_and_kong_mesh_indexes() {
        let kuma = br#"{"clusterId":"c","gui":"/gui","hostname":"cp","instanceId":"i","product":"Kuma","version":"2.14.3"}"#;
        assert_eq!(parse_index(kuma).as_deref(), Ok("2.14.3"));
        let kong = br#"{"product":"Kong Mesh","version":"2.14.1","basedOnKuma":"2.14.3"}"#;
        assert_eq!(parse_index(kong).as_deref(), Ok("2.14.3"));
        assert!(parse_index(b"{}").is_err());
        assert!(parse_index(b"<html>").is_err());
    }
}
