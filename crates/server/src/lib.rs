//! Switchyard server (being written).
