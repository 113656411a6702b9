//! actix-web on handoff's listeners (work in progress).
