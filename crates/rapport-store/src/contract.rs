//! The contract suite every backend passes. (Written next.)
