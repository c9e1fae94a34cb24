//! The send buffer: bytes written by the application and not yet acknowledged, bounded.
// IMPLEMENT: see the task description.
