//! GraphiQL on `/`: pinned asset versions with Subresource Integrity, a strict
//! Content-Security-Policy, no framing, and an offline mode.
//!
//! Users paste bearer tokens into this page, so nothing it loads may change
//! under it: every script and stylesheet is an exact version whose SHA-384
//! the browser checks (`integrity`), the CSP allows scripts only from this
//! server and that CDN, and `frame-ancestors 'none'` with `X-Frame-Options`
//! stops clickjacking. With `--graphiql-assets-dir` the same files (same
//! hashes) are served from a local directory instead, for machines without
//! internet access.

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One pinned asset: its file name, where the CDN has it, and its SHA-384.
struct Asset {
    file: &'static str,
    cdn: &'static str,
    integrity: &'static str,
}

/// React and ReactDOM 18.3.1, GraphiQL 4.1.2: the files of their npm packages.
const ASSETS: [Asset; 4] = [
    Asset {
        file: "react.production.min.js",
        cdn: "https://unpkg.com/react@18.3.1/umd/react.production.min.js",
        integrity: "sha384-DGyLxAyjq0f9SPpVevD6IgztCFlnMF6oW/XQGmfe+IsZ8TqEiDrcHkMLKI6fiB/Z",
    },
    Asset {
        file: "react-dom.production.min.js",
        cdn: "https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js",
        integrity: "sha384-gTGxhz21lVGYNMcdJOyq01Edg0jhn/c22nsx0kyqP0TxaV5WVdsSH1fSDUf5YJj1",
    },
    Asset {
        file: "graphiql.min.js",
        cdn: "https://unpkg.com/graphiql@4.1.2/graphiql.min.js",
        integrity: "sha384-9XdHu7ajgGJziD4J1zNBKQ842Q/+zZfDv+ib1eMhZWBH6hPAs806x+Jbcf0yNO6B",
    },
    Asset {
        file: "graphiql.min.css",
        cdn: "https://unpkg.com/graphiql@4.1.2/graphiql.min.css",
        integrity: "sha384-1el1QShFBnnXTx9x/Cprg82hZWKt0ry29OAYIXt05swbi0KcZDFoj0CWguMpopJr",
    },
];

/// Starts GraphiQL against `/graphql`, subscriptions included: the fetcher
/// runs them over a WebSocket to the same path (the graphql-ws client
/// GraphiQL bundles), and sends the Headers editor in `connection_init`'s
/// payload, where the server finds the token. Served as a file so the CSP
/// needs no inline script.
const INIT_JS: &str = r#"const url = new URL("/graphql", window.location.origin);
const subscriptionUrl = new URL(url);
subscriptionUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";
ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher: GraphiQL.createFetcher({ url: url.toString(), subscriptionUrl: subscriptionUrl.toString() }),
    defaultEditorToolsVisibility: true,
  }),
);
"#;

/// Where the page's assets come from.
#[derive(Clone, Debug)]
pub struct GraphiqlAssets {
    local: Option<PathBuf>,
}

impl GraphiqlAssets {
    /// The CDN, or the files in `dir` when given.
    pub fn new(dir: Option<PathBuf>) -> Self {
        GraphiqlAssets { local: dir }
    }

    fn src(&self, asset: &Asset) -> String {
        match self.local {
            Some(_) => format!("/graphiql/{}", asset.file),
            None => asset.cdn.to_owned(),
        }
    }

    /// The page's HTML.
    fn page(&self) -> String {
        let [react, react_dom, js, css] = &ASSETS;
        let tag = |asset: &Asset| {
            format!(
                r#"<script src="{}" integrity="{}" crossorigin="anonymous"></script>"#,
                self.src(asset),
                asset.integrity
            )
        };
        format!(
            r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>blogql</title>
    <style>body {{ margin: 0; }} #graphiql {{ height: 100dvh; }}</style>
    <link rel="stylesheet" href="{css_src}" integrity="{css_integrity}" crossorigin="anonymous" />
    {react}
    {react_dom}
    {js}
  </head>
  <body>
    <div id="graphiql">Loading GraphiQL…</div>
    <script src="/graphiql/init.js"></script>
  </body>
</html>
"#,
            css_src = self.src(css),
            css_integrity = css.integrity,
            react = tag(react),
            react_dom = tag(react_dom),
            js = tag(js),
        )
    }

    /// The Content-Security-Policy for the page. `connect-src 'self'`
    /// allows this origin's `/graphql` and, under CSP Level 3, a WebSocket
    /// to the same host and port (`ws:` for `http:`, `wss:` for `https:`),
    /// and nothing else.
    fn csp(&self) -> String {
        let cdn = if self.local.is_some() { "" } else { " https://unpkg.com" };
        format!(
            "default-src 'none'; script-src 'self'{cdn}; style-src 'self'{cdn} 'unsafe-inline'; \
             img-src 'self' data:; font-src 'self' data:{cdn}; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
        )
    }
}

/// Headers every GraphiQL response carries.
fn protected(mut resp: Response, csp: Option<&str>) -> Response {
    let headers = resp.headers_mut();
    if let Some(csp) = csp.and_then(|c| HeaderValue::from_str(c).ok()) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

/// `GET /`: the page.
pub async fn page(State(assets): State<GraphiqlAssets>) -> Response {
    let csp = assets.csp();
    protected(axum::response::Html(assets.page()).into_response(), Some(&csp))
}

/// `GET /graphiql/{file}`: the start-up script, and in offline mode the pinned files.
pub async fn asset(State(assets): State<GraphiqlAssets>, Path(file): Path<String>) -> Response {
    let content_type = |name: &str| if name.ends_with(".css") { "text/css" } else { "text/javascript" };
    if file == "init.js" {
        return protected(([(header::CONTENT_TYPE, "text/javascript")], INIT_JS).into_response(), None);
    }
    // Only the pinned files, by exact name: nothing else in the directory is reachable.
    let (Some(dir), Some(asset)) = (&assets.local, ASSETS.iter().find(|a| a.file == file)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(dir.join(asset.file)).await {
        Ok(bytes) => protected(([(header::CONTENT_TYPE, content_type(asset.file))], bytes).into_response(), None),
        Err(err) => {
            tracing::warn!(file = asset.file, error = %err, "a GraphiQL asset is missing from the assets directory");
            StatusCode::NOT_FOUND.into_response()
        }
    }
}
