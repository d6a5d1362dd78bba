//! Paging, the same on every list: at most `limit` items (default [`DEFAULT_LIMIT`], at most
//! [`MAX_LIMIT`]) and an opaque `next_cursor` to pass back for the next page (absent on the
//! last). A cursor is the sort key of the last item returned, so items added meanwhile never
//! shift a page (no duplicates, no gaps).

use std::fmt::Display;
use std::str::FromStr;

use super::OpsError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 200;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub cursor: Option<String>,
}

impl PageRequest {
    /// Checks `limit` (1 to [`MAX_LIMIT`]); an empty cursor is no cursor.
    pub fn new(limit: Option<i64>, cursor: Option<String>) -> Result<Self, OpsError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => n as u32,
            Some(n) => {
                return Err(OpsError::Invalid(format!(
                    "limit must be 1 to {MAX_LIMIT}, not {n}"
                )));
            }
        };
        Ok(Self {
            limit,
            cursor: cursor.filter(|c| !c.is_empty()),
        })
    }

    /// Everything, for callers that want the whole list.
    pub fn all() -> Self {
        Self {
            limit: u32::MAX,
            cursor: None,
        }
    }

    /// The cursor parsed as a sort key.
    pub fn after<K: FromStr>(&self) -> Result<Option<K>, OpsError> {
        self.cursor
            .as_deref()
            .map(|c| {
                c.parse()
                    .map_err(|_| OpsError::Invalid(format!("{c:?} is not a cursor of this list")))
            })
            .transpose()
    }
}

/// Sorts `items` by `key` (ascending or descending), skips up to the cursor and cuts a page.
/// Returns the page and the cursor of the next one.
pub fn paginate<T, K>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> K,
    descending: bool,
    req: &PageRequest,
) -> Result<(Vec<T>, Option<String>), OpsError>
where
    K: Ord + Display + FromStr,
{
    let after: Option<K> = req.after()?;
    items.sort_by(|a, b| {
        let o = key(a).cmp(&key(b));
        if descending { o.reverse() } else { o }
    });
    let mut page: Vec<T> = items
        .into_iter()
        .filter(|t| match &after {
            None => true,
            Some(c) if descending => key(t) < *c,
            Some(c) => key(t) > *c,
        })
        .take(req.limit as usize + 1)
        .collect();
    let next = if page.len() > req.limit as usize {
        page.truncate(req.limit as usize);
        page.last().map(|t| key(t).to_string())
    } else {
        None
    };
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_the_cursor_without_gaps() {
        let req = PageRequest::new(Some(2), None).unwrap();
        let (p1, c1) = paginate(vec![5, 1, 4, 2, 3], |x| *x, false, &req).unwrap();
        assert_eq!((p1, c1.clone()), (vec![1, 2], Some("2".to_string())));
        let req = PageRequest::new(Some(2), c1).unwrap();
        let (p2, c2) = paginate(vec![5, 1, 4, 2, 3, 0], |x| *x, false, &req).unwrap();
        assert_eq!((p2, c2.clone()), (vec![3, 4], Some("4".to_string())));
        let req = PageRequest::new(Some(2), c2).unwrap();
        assert_eq!(
            paginate(vec![5, 1, 4, 2, 3], |x| *x, false, &req).unwrap(),
            (vec![5], None)
        );
        let req = PageRequest::new(Some(3), Some("4".into())).unwrap();
        assert_eq!(
            paginate(vec![5, 1, 4, 2, 3], |x| *x, true, &req).unwrap(),
            (vec![3, 2, 1], None)
        );
    }

    #[test]
    fn limits_are_checked() {
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(Some(-1), None).is_err());
        assert!(PageRequest::new(Some(i64::from(MAX_LIMIT) + 1), None).is_err());
        assert_eq!(PageRequest::new(None, None).unwrap().limit, DEFAULT_LIMIT);
        let bad = PageRequest::new(None, Some("x".into())).unwrap();
        assert!(bad.after::<u64>().is_err());
    }
}
