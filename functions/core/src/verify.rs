//! The verifier: which versions of each table can be restored from the backup alone, and what
//! has gone wrong in the source. (Being built.)
