//! The page's files, embedded in the binary at build time (`cargo build` is the only
//! build step: plain JavaScript modules and CSS, no bundler, nothing fetched at run time).
//!
//! One table: the URL path, the content type and the bytes. Adding a file to `ui/` means
//! adding its row here; a test checks that every module the page imports is in the table.

/// One embedded file.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// FNV-1a of the bytes, computed at compile time: the strong ETag.
    hash: u64,
}

impl Asset {
    const fn new(path: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
        Asset {
            path,
            content_type,
            body,
            hash: fnv1a(body),
        }
    }

    /// The quoted ETag; it changes exactly when the file does.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", self.hash)
    }
}

const JS: &str = "text/javascript; charset=utf-8";

pub const ASSETS: &[Asset] = &[
    Asset::new(
        "/",
        "text/html; charset=utf-8",
        include_bytes!("ui/index.html"),
    ),
    Asset::new("/ui/app.js", JS, include_bytes!("ui/app.js")),
    Asset::new("/ui/rpc.js", JS, include_bytes!("ui/rpc.js")),
    Asset::new("/ui/model.js", JS, include_bytes!("ui/model.js")),
    Asset::new("/ui/dom.js", JS, include_bytes!("ui/dom.js")),
    Asset::new("/ui/grid.js", JS, include_bytes!("ui/grid.js")),
    Asset::new("/ui/details.js", JS, include_bytes!("ui/details.js")),
    Asset::new("/ui/format.js", JS, include_bytes!("ui/format.js")),
    Asset::new(
        "/ui/style.css",
        "text/css; charset=utf-8",
        include_bytes!("ui/style.css"),
    ),
    Asset::new(
        "/ui/icon.svg",
        "image/svg+xml",
        include_bytes!("ui/icon.svg"),
    ),
];

pub fn find(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `./x.js` a script imports, and every `/ui/...` the page links, is served.
    #[test]
    fn every_reference_is_embedded() {
        for asset in ASSETS {
            let text = std::str::from_utf8(asset.body).unwrap();
            for (i, _) in text.match_indices("from \"./") {
                let name = text[i + 8..].split('"').next().unwrap();
                assert!(find(&format!("/ui/{name}")).is_some(), "{name}");
            }
            for (i, _) in text.match_indices("\"/ui/") {
                let path = text[i + 1..].split('"').next().unwrap();
                assert!(find(path).is_some(), "{path} in {}", asset.path);
            }
        }
    }

    #[test]
    fn etags_differ_by_content() {
        assert_ne!(ASSETS[0].etag(), ASSETS[1].etag());
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
