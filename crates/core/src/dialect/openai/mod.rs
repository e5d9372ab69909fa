//! openai dialect (being written).
