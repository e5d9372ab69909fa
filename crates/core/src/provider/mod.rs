//! Provider catalog (being written).
