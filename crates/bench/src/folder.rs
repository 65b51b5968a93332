//! A large folder of small PNGs for the memory benchmark: 32×32 variants of demo images (shifted,
//! one pixel stamped with the index so that no two files are equal), written in parallel.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use image::GrayImage;
use rayon::prelude::*;
use serde_json::json;

use super::{MakeFolderArgs, Report};

const SIZE: u32 = 32;
/// Files per sub-folder.
const PER_FOLDER: usize = 1000;

pub fn run(args: &MakeFolderArgs) -> Report {
    let start = Instant::now();
    let mut paths: Vec<_> = std::fs::read_dir(&args.source)
        .with_context(|| args.source.display().to_string())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.extension().is_some_and(|e| e == "png"));
    paths.sort();
    let sources: Vec<GrayImage> = paths
        .iter()
        .map(|p| Ok(image::open(p).with_context(|| p.display().to_string())?.to_luma8()))
        .collect::<Result<_>>()?;
    if sources.is_empty() {
        bail!("{}: no PNG files", args.source.display());
    }
    let half = args.images / 2;
    for (role, count) in [("id", half), ("ood", args.images - half)] {
        for folder in 0..count.div_ceil(PER_FOLDER) {
            std::fs::create_dir_all(args.out.join(role).join(format!("{folder:03}")))?;
        }
    }
    (0..args.images).into_par_iter().try_for_each(|i| -> Result<()> {
        let (role, j) = if i < half { ("id", i) } else { ("ood", i - half) };
        let source = &sources[i % sources.len()];
        let round = (i / sources.len()) as u32;
        let (dx, dy) = (round % 5, (round / 5) % 5);
        let mut image = GrayImage::new(SIZE, SIZE);
        for (x, y, pixel) in source.enumerate_pixels() {
            if x + dx < SIZE && y + dy < SIZE {
                image.put_pixel(x + dx, y + dy, *pixel);
            }
        }
        image.put_pixel((i % 32) as u32, ((i / 32) % 32) as u32, image::Luma([(i % 251) as u8]));
        let path = args
            .out
            .join(role)
            .join(format!("{:03}", j / PER_FOLDER))
            .join(format!("{j:06}.png"));
        image.save(&path).with_context(|| path.display().to_string())
    })?;
    Ok(json!({
        "kind": "make_folder",
        "images": args.images,
        "seconds": start.elapsed().as_secs_f64(),
        "out": args.out.display().to_string(),
    }))
}
