//! anthropic dialect (being written).
