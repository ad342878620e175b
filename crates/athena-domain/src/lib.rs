//! Domain types of Athena, parsed once at the edge ("parse, don't validate"):
//! identifiers, email addresses, content hashes, object keys, book formats and roles.
//!
//! This crate does no IO and knows nothing about HTTP, SQL or object storage. Every other
//! crate speaks in these types; a value of one of them has already been checked.

mod format;
mod ids;
mod text;

pub use format::BookFormat;
pub use ids::{BookId, SessionId, ShelfId, UserId};
pub use text::{sanitize_filename, ContentHash, Email, ObjectKey, ParseError, Role};
