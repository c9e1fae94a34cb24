//! The receive buffer: in-order bytes waiting for the application plus out-of-order data, bounded.
// IMPLEMENT: see the task description.
