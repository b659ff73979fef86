//! Search over hyperparameters beyond the grid: search spaces and random search.
pub mod random;
pub mod space;

pub use space::Domain;
