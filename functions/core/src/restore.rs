//! The restorer: plan and carry out rollback, clone and repair. (Being built.)
