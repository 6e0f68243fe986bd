//! A small blocking S3 client: just the calls a WORM backup needs, Object Lock included.
//!
//! Requests are signed with AWS Signature Version 4 by `rusty-s3` (as presigned URLs, valid for
//! a minute) and sent by `ureq`. Every header that matters is signed: the Object Lock mode and
//! date, the user metadata, and the body's `Content-MD5` and `x-amz-checksum-sha256`, so S3
//! refuses a body or a retention that was changed on the way. Addressing is path-style
//! (`ENDPOINT/BUCKET/KEY`), which every S3 implementation serves.
//!
//! Credentials come from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional
//! `AWS_SESSION_TOKEN`; region `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`) and are
//! never printed: `Debug` shows the access key id only.

use std::{io::Read, time::Duration};

use base64::Engine;
use md5::Digest;
use rusty_s3::{signing, Bucket, Credentials, Method, UrlStyle};

use crate::Error;

/// How long a signed request stays valid.
const SIGNATURE_LIFETIME: u64 = 60;

/// An S3 error response (or a transport failure, with status 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub status: u16,
    /// The S3 error code (`AccessDenied`, `NoSuchKey`, …), empty when the body had none.
    pub code: String,
    pub message: String,
    /// What was being done: `PUT s3://bucket/key`.
    pub operation: String,
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == 0 {
            return write!(f, "{}: {}", self.operation, self.message);
        }
        write!(f, "{}: HTTP {}", self.operation, self.status)?;
        if !self.code.is_empty() {
            write!(f, " {}", self.code)?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl From<S3Error> for Error {
    fn from(e: S3Error) -> Error {
        Error::Remote(e.to_string())
    }
}

/// Object Lock retention of one object version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// `COMPLIANCE` or `GOVERNANCE`.
    pub mode: String,
    /// RFC 3339, as S3 returns it.
    pub retain_until: String,
}

/// What `HEAD` (or `GET`) says about an object version.
#[derive(Debug, Clone, Default)]
pub struct ObjectInfo {
    pub version_id: Option<String>,
    pub size: u64,
    /// `x-amz-meta-sha256`: the hex SHA-256 the uploader recorded.
    pub sha256: Option<String>,
    pub retention: Option<Retention>,
}

/// One entry of a version listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
}

/// A bucket on an S3 endpoint, with the credentials to use it.
pub struct Client {
    agent: ureq::Agent,
    bucket: Bucket,
    credentials: Credentials,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.bucket.base_url().as_str())
            .field("access_key_id", &self.credentials.key())
            .finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Client {
    /// A client for `bucket` at `endpoint` (`http://127.0.0.1:8333`, `https://s3.eu-west-1.amazonaws.com`).
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        access_key: &str,
        secret_key: &str,
        token: Option<&str>,
    ) -> Result<Client, Error> {
        let url: url::Url = endpoint.parse().map_err(|e| Error::Input(format!("--endpoint `{endpoint}`: not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::Input(format!("--endpoint `{endpoint}`: expected http://HOST[:PORT] or https://HOST[:PORT]")));
        }
        let bucket = Bucket::new(url, UrlStyle::Path, bucket.to_string(), region.to_string())
            .map_err(|e| Error::Input(format!("bucket `{bucket}`: {e}")))?;
        let credentials = match token {
            Some(token) => Credentials::new_with_token(access_key.to_string(), secret_key.to_string(), token.to_string()),
            None => Credentials::new(access_key.to_string(), secret_key.to_string()),
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(300)))
            .build();
        Ok(Client { agent: ureq::Agent::new_with_config(config), bucket, credentials })
    }

    /// A client with the credentials and region of the environment (see the module docs).
    pub fn from_env(endpoint: &str, bucket: &str) -> Result<Client, Error> {
        let missing =
            |name: &str| Error::Input(format!("{name} is not set: S3 credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"));
        let access_key = env("AWS_ACCESS_KEY_ID").ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?;
        let secret_key = env("AWS_SECRET_ACCESS_KEY").ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?;
        let region = env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
        Client::new(endpoint, bucket, &region, &access_key, &secret_key, env("AWS_SESSION_TOKEN").as_deref())
    }

    pub fn bucket_name(&self) -> &str {
        self.bucket.name()
    }

    /// `s3://bucket/key`, for messages.
    pub fn display(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket.name())
    }

    /// Signs and sends one request. `query` and `headers` need not be sorted; header names must
    /// be lowercase. Returns the status, the response headers and the body reader.
    fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<ureq::http::Response<ureq::Body>, S3Error> {
        let operation =
            format!("{} {}", method_name(method), key.map_or_else(|| format!("s3://{}", self.bucket.name()), |k| self.display(k)));
        let url = match key {
            Some(key) => self.bucket.object_url(key),
            None => self.bucket.base_url().clone(),
        };
        let mut query = query.to_vec();
        query.sort();
        let mut headers = headers.to_vec();
        headers.sort();
        let signed = signing::sign(
            &jiff::Timestamp::now(),
            method,
            url,
            self.credentials.key(),
            self.credentials.secret(),
            self.credentials.token(),
            self.bucket.region(),
            SIGNATURE_LIFETIME,
            query.iter().copied(),
            headers.iter().copied(),
        );
        let uri = signed.as_str();
        let transport = |e: ureq::Error| S3Error { status: 0, code: String::new(), message: e.to_string(), operation: operation.clone() };
        let result = match method {
            Method::Get => headers.iter().fold(self.agent.get(uri), |r, (k, v)| r.header(*k, *v)).call(),
            Method::Head => headers.iter().fold(self.agent.head(uri), |r, (k, v)| r.header(*k, *v)).call(),
            Method::Delete => headers.iter().fold(self.agent.delete(uri), |r, (k, v)| r.header(*k, *v)).call(),
            Method::Put => headers.iter().fold(self.agent.put(uri), |r, (k, v)| r.header(*k, *v)).send(body.unwrap_or_default()),
            Method::Post => headers.iter().fold(self.agent.post(uri), |r, (k, v)| r.header(*k, *v)).send(body.unwrap_or_default()),
        };
        let mut response = result.map_err(transport)?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let text = response.body_mut().with_config().limit(1 << 20).read_to_string().unwrap_or_default();
        Err(S3Error {
            status,
            code: xml_text(&text, "Code").unwrap_or_default(),
            message: xml_text(&text, "Message").unwrap_or_default(),
            operation,
        })
    }

    /// Creates the bucket, with Object Lock (and so versioning) enabled when asked.
    pub fn create_bucket(&self, object_lock: bool) -> Result<(), S3Error> {
        let headers: &[(&str, &str)] = if object_lock { &[("x-amz-bucket-object-lock-enabled", "true")] } else { &[] };
        self.send(Method::Put, None, &[], headers, Some(&[])).map(drop)
    }

    /// The bucket's Object Lock configuration: `Ok(None)` when the bucket has none.
    pub fn object_lock_enabled(&self) -> Result<bool, S3Error> {
        match self.send(Method::Get, None, &[("object-lock", "")], &[], None) {
            Ok(mut response) => {
                let text = read_text(&mut response);
                Ok(xml_text(&text, "ObjectLockEnabled").as_deref() == Some("Enabled"))
            }
            Err(e) if e.code == "ObjectLockConfigurationNotFoundError" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Uploads `body` under `key` with its SHA-256 as metadata and, when given, an Object Lock
    /// retention. Returns the new version id (when the bucket is versioned).
    pub fn put_object(&self, key: &str, body: &[u8], retention: Option<&Retention>) -> Result<Option<String>, S3Error> {
        let sha = crate::entry::sha256(body);
        let sha_hex = crate::entry::hex(&sha);
        let sha_b64 = crate::entry::b64(&sha);
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body));
        // ureq sends Content-Length itself (unsigned, as SigV4 allows).
        let mut headers = vec![
            ("content-md5", md5.as_str()),
            ("content-type", "application/octet-stream"),
            ("x-amz-checksum-sha256", sha_b64.as_str()),
            ("x-amz-meta-sha256", sha_hex.as_str()),
        ];
        if let Some(r) = retention {
            headers.push(("x-amz-object-lock-mode", r.mode.as_str()));
            headers.push(("x-amz-object-lock-retain-until-date", r.retain_until.as_str()));
        }
        let response = self.send(Method::Put, Some(key), &[], &headers, Some(body))?;
        Ok(header(&response, "x-amz-version-id"))
    }

    /// `HEAD` of an object (its latest version, or `version`): `Ok(None)` when there is none.
    pub fn head_object(&self, key: &str, version: Option<&str>) -> Result<Option<ObjectInfo>, S3Error> {
        let query: Vec<(&str, &str)> = version.map(|v| ("versionId", v)).into_iter().collect();
        match self.send(Method::Head, Some(key), &query, &[], None) {
            Ok(response) => Ok(Some(object_info(&response))),
            Err(e) if e.status == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Downloads an object (its latest version, or `version`) with what its headers say.
    pub fn get_object(&self, key: &str, version: Option<&str>) -> Result<(Vec<u8>, ObjectInfo), S3Error> {
        let query: Vec<(&str, &str)> = version.map(|v| ("versionId", v)).into_iter().collect();
        let response = self.send(Method::Get, Some(key), &query, &[], None)?;
        let info = object_info(&response);
        let mut body = Vec::with_capacity(info.size as usize);
        response.into_body().into_reader().read_to_end(&mut body).map_err(|e| S3Error {
            status: 0,
            code: String::new(),
            message: format!("reading the body: {e}"),
            operation: format!("GET {}", self.display(key)),
        })?;
        Ok((body, info))
    }

    /// Deletes an object: its given version, or (no version) the latest, which in a versioned
    /// bucket only adds a delete marker. `bypass_governance` asks to bypass a GOVERNANCE lock
    /// (which no request can do for COMPLIANCE).
    pub fn delete_object(&self, key: &str, version: Option<&str>, bypass_governance: bool) -> Result<(), S3Error> {
        let query: Vec<(&str, &str)> = version.map(|v| ("versionId", v)).into_iter().collect();
        let headers: &[(&str, &str)] = if bypass_governance { &[("x-amz-bypass-governance-retention", "true")] } else { &[] };
        self.send(Method::Delete, Some(key), &query, headers, None).map(drop)
    }

    /// Sets the retention of an object version (S3 allows only extending a COMPLIANCE one).
    pub fn put_object_retention(&self, key: &str, version: &str, retention: &Retention) -> Result<(), S3Error> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            retention.mode, retention.retain_until
        );
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body.as_bytes()));
        let headers = [("content-md5", md5.as_str()), ("content-type", "application/xml")];
        self.send(Method::Put, Some(key), &[("retention", ""), ("versionId", version)], &headers, Some(body.as_bytes())).map(drop)
    }

    /// Every version and delete marker under `prefix`, in S3's order: by key, and for one key
    /// the newest first.
    pub fn list_versions(&self, prefix: &str) -> Result<Vec<Version>, S3Error> {
        let mut versions = Vec::new();
        let (mut key_marker, mut version_marker) = (String::new(), String::new());
        loop {
            let mut query = vec![("prefix", prefix), ("versions", "")];
            if !key_marker.is_empty() {
                query.push(("key-marker", key_marker.as_str()));
                if !version_marker.is_empty() {
                    query.push(("version-id-marker", version_marker.as_str()));
                }
            }
            let mut response = self.send(Method::Get, None, &query, &[], None)?;
            let text = read_text(&mut response);
            for (element, delete_marker) in xml_elements(&text, &["Version", "DeleteMarker"]) {
                versions.push(Version {
                    key: xml_text(element, "Key").unwrap_or_default(),
                    version_id: xml_text(element, "VersionId").unwrap_or_default(),
                    is_latest: xml_text(element, "IsLatest").as_deref() == Some("true"),
                    delete_marker: delete_marker == "DeleteMarker",
                    size: xml_text(element, "Size").and_then(|s| s.parse().ok()).unwrap_or(0),
                });
            }
            if xml_text(&text, "IsTruncated").as_deref() != Some("true") {
                return Ok(versions);
            }
            let next_key = xml_text(&text, "NextKeyMarker").unwrap_or_default();
            let next_version = xml_text(&text, "NextVersionIdMarker").unwrap_or_default();
            if next_key.is_empty() || (next_key == key_marker && next_version == version_marker) {
                return Err(S3Error {
                    status: 0,
                    code: String::new(),
                    message: "the version listing is truncated but gives no marker to continue from".into(),
                    operation: format!("GET {}?versions", self.display(prefix)),
                });
            }
            (key_marker, version_marker) = (next_key, next_version);
        }
    }
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Put => "PUT",
        Method::Post => "POST",
        Method::Delete => "DELETE",
    }
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn object_info(response: &ureq::http::Response<ureq::Body>) -> ObjectInfo {
    let retention = match (header(response, "x-amz-object-lock-mode"), header(response, "x-amz-object-lock-retain-until-date")) {
        (Some(mode), Some(retain_until)) => Some(Retention { mode, retain_until }),
        _ => None,
    };
    ObjectInfo {
        version_id: header(response, "x-amz-version-id").filter(|v| v != "null"),
        size: header(response, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0),
        sha256: header(response, "x-amz-meta-sha256"),
        retention,
    }
}

fn read_text(response: &mut ureq::http::Response<ureq::Body>) -> String {
    response.body_mut().with_config().limit(64 << 20).read_to_string().unwrap_or_default()
}

/// The text of the first `<name>…</name>` in `xml`, unescaped. S3's responses are flat enough
/// for this: no attributes are needed, and the elements read never nest in themselves.
pub fn xml_text(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(unescape(&xml[start..end]))
}

/// The contents of each `<name>…</name>` (for any of `names`), in document order, with its name.
fn xml_elements<'a>(xml: &'a str, names: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    let mut found = Vec::new();
    let mut rest = xml;
    let mut offset = 0;
    loop {
        let next = names.iter().filter_map(|name| rest.find(&format!("<{name}>")).map(|i| (i, *name))).min();
        let Some((i, name)) = next else { return found };
        let start = i + name.len() + 2;
        let Some(len) = rest[start..].find(&format!("</{name}>")) else { return found };
        found.push((&xml[offset + start..offset + start + len], name));
        let consumed = start + len + name.len() + 3;
        offset += consumed;
        rest = &rest[consumed..];
    }
}

fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_version_listing() {
        let xml = "<ListVersionsResult><IsTruncated>false</IsTruncated>\
            <Version><Key>p/a</Key><VersionId>2</VersionId><IsLatest>true</IsLatest><Size>4</Size></Version>\
            <DeleteMarker><Key>p/b</Key><VersionId>3</VersionId><IsLatest>true</IsLatest></DeleteMarker>\
            <Version><Key>p/b</Key><VersionId>1</VersionId><IsLatest>false</IsLatest><Size>5</Size></Version>\
            </ListVersionsResult>";
        let elements = xml_elements(xml, &["Version", "DeleteMarker"]);
        assert_eq!(elements.len(), 3);
        assert_eq!(elements[1].1, "DeleteMarker");
        assert_eq!(xml_text(elements[2].0, "Key").as_deref(), Some("p/b"));
        assert_eq!(xml_text("<Message>a &lt;b&gt; &amp;amp;</Message>", "Message").as_deref(), Some("a <b> &amp;"));
    }
}
