//! The app's panels, one module per panel: each holds its components and the handlers only it
//! uses. Components read the signals of [`Ui`](super::signals::Ui) and reach the controller
//! through context ([`Controller::expect`](super::controller::Controller::expect)).
//! Text from bundles and links is always inserted as text, never as HTML.

mod curves;
mod header;
mod inspect;
mod legend;
mod neighbours;
mod operators;
mod path;
mod picker;
mod prior;
mod results;
mod scatter;
mod share;
mod transport;

pub use self::curves::CurvesPanel;
pub use self::header::Header;
pub use self::inspect::InspectPanel;
pub use self::legend::Legend;
pub use self::neighbours::NeighbourStrip;
pub use self::operators::OperatorList;
pub use self::path::PathControls;
pub use self::picker::AnchorPanel;
pub use self::prior::{PriorControls, PriorGrid};
pub use self::results::ResultsPanel;
pub use self::scatter::Scatter;
pub use self::share::ShareBar;
pub use self::transport::TransportPanel;

/// Side of a thumbnail canvas, device pixels.
const THUMB_PX: u32 = 64;
