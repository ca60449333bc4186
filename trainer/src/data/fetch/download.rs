//! The HTTP download of an official archive: a temporary file in the target folder, the MD5
//! computed on the way, and a size cap (the official archive's length) enforced both on the
//! announced `Content-Length` and on the bytes actually sent.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tempfile::NamedTempFile;

use super::{PARTIAL_PREFIX, copy_hashed};
use crate::error::{Error, Result};

/// Downloads `url` into a temporary file in `dir` (named `.mclr-partial-*`), checking its MD5 on
/// the way. At most `max_bytes` are accepted: a larger `Content-Length` is refused before the
/// transfer, and a body that runs past the cap is stopped there.
///
/// # Errors
/// [`Error::DownloadTooLarge`] past the cap, [`Error::Download`] and [`Error::DownloadTruncated`] for transfer failures,
/// [`Error::ChecksumMismatch`] for a wrong MD5.
pub fn download(
    url: &str,
    dir: &Path,
    expected_md5: &str,
    max_bytes: u64,
    progress: bool,
) -> Result<NamedTempFile> {
    let err = |source: crate::error::Cause| Error::Download {
        url: url.to_owned(),
        source,
    };
    tracing::info!("downloading {url}");
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut response = agent.get(url).call().map_err(|e| err(Box::new(e)))?;
    let total = response.body().content_length();
    if let Some(total) = total.filter(|&t| t > max_bytes) {
        return Err(Error::DownloadTooLarge {
            url: url.to_owned(),
            limit: max_bytes,
            found: format!("announces {total} bytes"),
        });
    }
    let bar = if progress {
        indicatif::ProgressBar::with_draw_target(total, indicatif::ProgressDrawTarget::stderr())
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(url.rsplit('/').next().unwrap_or(url).to_owned());
    let mut tmp = tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| Error::io("creating a temporary file in", dir, e))?;
    // One byte more than the cap is read, to tell a body of exactly the cap from a longer one.
    let mut reader = bar.wrap_read(
        response
            .body_mut()
            .as_reader()
            .take(max_bytes.saturating_add(1)),
    );
    let (len, found) = copy_hashed(&mut reader, tmp.as_file_mut()).map_err(|e| err(Box::new(e)))?;
    bar.finish_and_clear();
    if len > max_bytes {
        return Err(Error::DownloadTooLarge {
            url: url.to_owned(),
            limit: max_bytes,
            found: format!("sent more than {max_bytes} bytes"),
        });
    }
    if let Some(total) = total.filter(|&t| t != len) {
        return Err(Error::DownloadTruncated {
            url: url.to_owned(),
            received: len,
            announced: total,
        });
    }
    if found != expected_md5 {
        return Err(Error::ChecksumMismatch {
            path: PathBuf::from(url),
            expected: expected_md5.to_owned(),
            found,
        });
    }
    Ok(tmp)
}
