//! `ViewState::from_query` on arbitrary text: never panics, allocates at most twice the input
//! plus a constant, and the state it returns prints to a link that parses back to the same state
//! with no warnings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mclr_viewer::state::{ViewState, shown_warnings};

#[global_allocator]
static ALLOC: mclr_fuzz::Tracking = mclr_fuzz::Tracking;

fuzz_target!(|data: &[u8]| {
    let query = String::from_utf8_lossy(data);
    let ((state, warnings), peak) = mclr_fuzz::measure(|| ViewState::from_query(&query));
    assert!(
        peak <= mclr_fuzz::allowance(query.len()),
        "parsing {} bytes had {peak} bytes allocated at once",
        query.len()
    );
    let lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert!(shown_warnings(&lines).len() <= mclr_viewer::state::MAX_SHOWN_WARNINGS + 1);
    let (again, warnings) = ViewState::from_query(&state.to_query());
    assert_eq!(warnings, vec![], "{}", state.to_query());
    assert_eq!(again, state);
});
