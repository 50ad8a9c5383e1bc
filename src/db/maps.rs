//! xapi's rules for `(string → string) map` fields, in one place for every class
//! (`db_cache_types.ml`, `db_cache_impl.ml`): map keys must be non-empty, adding a key
//! that exists is an error even with the same value (`idempotent_map = false`), and the
//! new entry goes first (`add_to_map` conses it on), which is the order clients see.

use super::DbError;

/// Refuses an empty key (xapi: `Db_exn.Empty_key_in_map`).
pub fn check_key(key: &str) -> Result<(), DbError> {
    if key.is_empty() {
        Err(DbError::EmptyKey)
    } else {
        Ok(())
    }
}

/// The list types map fields are stored in (`Vec` for sessions, `ThinVec` for tasks,
/// whose maps are usually empty).
pub trait PairList: std::ops::Deref<Target = [(String, String)]> {
    fn insert_front(&mut self, pair: (String, String));
}

impl PairList for Vec<(String, String)> {
    fn insert_front(&mut self, pair: (String, String)) {
        self.insert(0, pair);
    }
}

impl PairList for thin_vec::ThinVec<(String, String)> {
    fn insert_front(&mut self, pair: (String, String)) {
        self.insert(0, pair);
    }
}

/// Refuses a whole map that has an empty key.
pub fn check_keys(map: &[(String, String)]) -> Result<(), DbError> {
    map.iter().try_for_each(|(k, _)| check_key(k))
}

/// Adds `key` → `value` in front of `map`, the map being field `field` of row `r` of
/// `table` (named in the `MAP_DUPLICATE_KEY` error).
pub fn add(
    map: &mut impl PairList,
    table: &'static str,
    field: &'static str,
    r: &str,
    key: &str,
    value: &str,
) -> Result<(), DbError> {
    check_key(key)?;
    if map.iter().any(|(k, _)| k == key) {
        return Err(DbError::DuplicateKey(
            table,
            field,
            r.to_string(),
            key.to_string(),
        ));
    }
    map.insert_front((key.to_string(), value.to_string()));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xapi_map_rules() {
        let mut m = Vec::new();
        add(&mut m, "task", "other_config", "r", "a", "1").unwrap();
        add(&mut m, "task", "other_config", "r", "b", "2").unwrap();
        assert_eq!(m[0], ("b".to_string(), "2".to_string()));
        assert_eq!(
            add(&mut m, "task", "other_config", "r", "a", "1"),
            Err(DbError::DuplicateKey(
                "task",
                "other_config",
                "r".into(),
                "a".into()
            ))
        );
        assert_eq!(
            add(&mut m, "task", "other_config", "r", "", "x"),
            Err(DbError::EmptyKey)
        );
        assert_eq!(check_keys(&m), Ok(()));
        assert_eq!(
            check_keys(&[(String::new(), "v".into())]),
            Err(DbError::EmptyKey)
        );
    }
}
