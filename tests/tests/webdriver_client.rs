//! The WebDriver client against a page small enough to know exactly: navigation, elements,
//! clicks, typing, scripts, screenshots and the console log all do what the end-to-end test
//! relies on.
// Helpers outside #[test] fns may unwrap: a panic in a test is a failure with a message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use mclr_tests::chromium::{self, Gpu};
use mclr_tests::site;
use mclr_tests::webdriver::Driver;

const PAGE: &str = r#"<!doctype html>
<html><head><link rel="icon" href="data:,"></head>
<body>
<input id="name" type="text">
<button id="go" onclick="document.getElementById('out').textContent = 'hello ' + document.getElementById('name').value; document.body.dataset.clicked = 'yes'; console.error('boom from the page');">go</button>
<p id="out">idle</p>
</body></html>"#;

#[test]
fn client_drives_a_known_page_and_reads_its_console() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), PAGE).unwrap();
    let server = site::serve(dir.path(), 0).unwrap();
    chromium::require_installed().unwrap_or_else(|e| panic!("{}", mclr_shared::error_chain(&e)));
    let driver = Driver::start().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let session = driver
        .session(&chromium::capabilities(profile.path(), Gpu::Off))
        .unwrap();

    session.navigate(&server.url("/")).unwrap();
    assert_eq!(session.current_url().unwrap(), server.url("/"));
    let input = session.find("#name").unwrap();
    session.send_keys(&input, "mclr").unwrap();
    session.click(&session.find("#go").unwrap()).unwrap();
    let clicked = session
        .wait_for(
            "body[data-clicked=yes]",
            Duration::from_secs(5),
            |s, found| {
                let v = s.execute("return document.body.dataset.clicked || null;", &[])?;
                *found = v.to_string();
                Ok(v.as_str().map(str::to_owned))
            },
        )
        .unwrap();
    assert_eq!(clicked, "yes");
    assert_eq!(
        session.text(&session.find("#out").unwrap()).unwrap(),
        "hello mclr"
    );
    assert_eq!(
        session.attribute(&input, "id").unwrap().as_deref(),
        Some("name")
    );
    let doubled = session
        .execute(
            "return arguments[0].id + arguments[1];",
            &[input.to_json(), 2.into()],
        )
        .unwrap();
    assert_eq!(doubled, "name2");
    // A script's own `error` field is data, not a protocol error.
    let object = session
        .execute("return { error: 'page says no', n: 1 };", &[])
        .unwrap();
    assert_eq!(object["error"], "page says no");
    assert_eq!(session.find_all("input, button").unwrap().len(), 2);

    let err = session.find("#does-not-exist").unwrap_err().to_string();
    assert!(err.contains("no such element"), "{err}");
    let timeout = session
        .wait_for("#out to say bye", Duration::from_millis(300), |s, found| {
            *found = s.text(&s.find("#out")?)?;
            Ok((found.as_str() == "bye").then_some(()))
        })
        .unwrap_err()
        .to_string();
    assert!(
        timeout.contains("#out to say bye") && timeout.contains("hello mclr"),
        "{timeout}"
    );

    let png = session.screenshot().unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    let log = session.browser_log().unwrap();
    assert!(
        log.iter()
            .any(|e| e.level == "SEVERE" && e.message.contains("boom from the page")),
        "console.error not in the browser log: {log:?}"
    );
    session.close().unwrap();
}
