//! Encoding an RGB pixel buffer (as plotters and screenshots produce) as PNG bytes.

use std::io::Cursor;

/// PNG bytes of `width × height` RGB pixels (3 bytes each, row-major).
pub fn encode_rgb(width: u32, height: u32, pixels: Vec<u8>) -> Result<Vec<u8>, String> {
    let image = image::RgbImage::from_raw(width, height, pixels).ok_or("image buffer has the wrong size")?;
    let mut png = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| format!("cannot encode PNG: {e}"))?;
    Ok(png)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_rejects_a_short_buffer() {
        let png = super::encode_rgb(2, 1, vec![255, 0, 0, 0, 0, 255]).unwrap();
        let back = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(back.get_pixel(1, 0).0, [0, 0, 255]);
        assert!(super::encode_rgb(2, 2, vec![0; 5]).is_err());
    }
}
