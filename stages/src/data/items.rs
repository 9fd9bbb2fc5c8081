//! The items table every data stage produces, in columnar Rust form:
//! `item: u32, title: utf8, categories: list<utf8>, genres: list<utf8>`.

use std::sync::Arc;

use arrow::array::{Array, ListArray, ListBuilder, StringArray, StringBuilder, UInt32Array};
use arrow::record_batch::RecordBatch;

use crate::api::error::StageError;
use crate::data::table::{batch, column};

/// Columnar item metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Items {
    /// Item ids.
    pub item: Vec<u32>,
    /// Titles (lossily decoded where the source was not UTF-8).
    pub title: Vec<String>,
    /// Domain categories (MovieLens genres; Anime type).
    pub categories: Vec<Vec<String>>,
    /// Genres (Anime; MovieLens repeats its genres here).
    pub genres: Vec<Vec<String>>,
}

fn list(values: &[Vec<String>]) -> ListArray {
    let mut b = ListBuilder::new(StringBuilder::new());
    for v in values {
        for s in v {
            b.values().append_value(s);
        }
        b.append(true);
    }
    b.finish()
}

fn unlist(arr: &ListArray, table: &str, name: &str) -> Result<Vec<Vec<String>>, StageError> {
    let mut out = Vec::with_capacity(arr.len());
    for i in 0..arr.len() {
        let v = arr.value(i);
        let s = v
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| StageError::Input(format!("column `{name}` of `{table}` is not a list of strings")))?;
        out.push((0..s.len()).map(|j| s.value(j).to_string()).collect());
    }
    Ok(out)
}

impl Items {
    /// Ids of the items with category `c`.
    pub fn ids_in(&self, c: &str) -> std::collections::HashSet<u32> {
        self.item.iter().zip(&self.categories).filter(|(_, cs)| cs.iter().any(|x| x == c)).map(|(i, _)| *i).collect()
    }

    /// As an Arrow table.
    pub fn to_batch(&self) -> Result<RecordBatch, StageError> {
        batch(vec![
            ("item", Arc::new(UInt32Array::from(self.item.clone()))),
            ("title", Arc::new(StringArray::from(self.title.clone()))),
            ("categories", Arc::new(list(&self.categories))),
            ("genres", Arc::new(list(&self.genres))),
        ])
    }

    /// From an Arrow table.
    pub fn from_batch(b: &RecordBatch, table: &str) -> Result<Items, StageError> {
        let titles = column::<StringArray>(b, table, "title")?;
        Ok(Items {
            item: column::<UInt32Array>(b, table, "item")?.values().to_vec(),
            title: (0..titles.len()).map(|i| titles.value(i).to_string()).collect(),
            categories: unlist(column::<ListArray>(b, table, "categories")?, table, "categories")?,
            genres: unlist(column::<ListArray>(b, table, "genres")?, table, "genres")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_round_trip() {
        let items = Items {
            item: vec![1, 2],
            title: vec!["a".into(), "b".into()],
            categories: vec![vec!["X".into()], vec![]],
            genres: vec![vec!["g".into(), "h".into()], vec![]],
        };
        assert_eq!(Items::from_batch(&items.to_batch().unwrap(), "items").unwrap(), items);
    }
}
