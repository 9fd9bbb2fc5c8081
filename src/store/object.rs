//! Artifact codecs: tables as deterministic Parquet (same table → same bytes → same hash, which
//! is what makes early cutoff work), weights as the safetensors bytes the stage produced.

use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use s2r_stages::Artifact;

use super::StoreError;

/// Serializes an artifact; returns the bytes and the row count for tables.
pub fn encode(name: &str, artifact: &Artifact) -> Result<(Vec<u8>, Option<u64>), StoreError> {
    match artifact {
        Artifact::Weights(b) => Ok((b.clone(), None)),
        Artifact::File { bytes, .. } => Ok((bytes.clone(), None)),
        Artifact::Table(batch) => {
            let codec =
                |e: parquet::errors::ParquetError| StoreError::Codec { what: name.to_string(), message: e.to_string() };
            // A fixed `created_by` keeps the bytes independent of anything but the data.
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_created_by("s2r-pipe".to_string())
                .build();
            let mut buf = Vec::new();
            let mut w = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props)).map_err(codec)?;
            w.write(batch).map_err(codec)?;
            w.close().map_err(codec)?;
            Ok((buf, Some(batch.num_rows() as u64)))
        }
    }
}

/// Deserializes an object's bytes.
pub fn decode(hash: &str, ext: &str, bytes: Vec<u8>) -> Result<Artifact, StoreError> {
    let codec = |m: String| StoreError::Codec { what: hash.to_string(), message: m };
    match ext {
        "safetensors" => Ok(Artifact::Weights(bytes)),
        ext if s2r_stages::api::artifact::FILE_EXTENSIONS.contains(&ext) => {
            Ok(Artifact::File { ext: ext.to_string(), bytes })
        }
        "parquet" => {
            let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
                .map_err(|e| codec(e.to_string()))?
                .with_batch_size(1 << 20)
                .build()
                .map_err(|e| codec(e.to_string()))?;
            let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
            let batches: Vec<_> = reader.collect::<Result<_, _>>().map_err(|e| codec(e.to_string()))?;
            let batch = arrow::compute::concat_batches(&schema, &batches).map_err(|e| codec(e.to_string()))?;
            Ok(Artifact::Table(batch))
        }
        other => Err(codec(format!("unknown object type `{other}`"))),
    }
}

/// Rows of a Parquet object, from its footer (`None` when the bytes are not Parquet).
pub fn parquet_rows(bytes: Vec<u8>) -> Option<u64> {
    use parquet::file::reader::FileReader;
    let r = parquet::file::reader::SerializedFileReader::new(Bytes::from(bytes)).ok()?;
    u64::try_from(r.metadata().file_metadata().num_rows()).ok()
}
