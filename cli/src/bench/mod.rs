//! `shmbatch bench`.
use std::path::Path;

use crate::Result;

/// Options of `shmbatch bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A 10-second version.
    #[arg(long)]
    quick: bool,
}

pub(crate) fn run(_a: &Args) -> Result {
    Ok(())
}
pub(crate) fn peer(_a: &[String]) -> Result {
    Ok(())
}
pub(crate) fn replot(_a: &Path, _b: &Path) -> Result {
    Ok(())
}
