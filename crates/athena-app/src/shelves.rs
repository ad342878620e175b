//! Shelves and the books on them. Every operation is scoped to the caller: another user's shelf or
//! book is "not found", never "forbidden" (which would reveal that it exists).

use athena_domain::{BookId, ShelfId};
use athena_store::{NewShelf, Shelf, ShelfItem, ShelfPatch};

use crate::auth::Principal;
use crate::library::check_text;
use crate::{App, AppError, AppResult};

#[derive(Clone, Debug, Default)]
pub struct ShelfCreate {
    pub name: String,
    pub description: Option<String>,
    pub sort_order: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct ShelfEdit {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub sort_order: Option<i64>,
}

impl App {
    pub async fn create_shelf(&self, who: &Principal, req: ShelfCreate) -> AppResult<Shelf> {
        let name = check_text("name", &req.name, 200)?;
        let description = req.description.filter(|d| !d.trim().is_empty()).map(|d| check_text("description", &d, 2000)).transpose()?;
        Ok(self
            .store
            .create_shelf(NewShelf {
                id: ShelfId::new(),
                user_id: who.user_id.clone(),
                name,
                description,
                sort_order: req.sort_order.unwrap_or(0),
                now: self.clock.now(),
            })
            .await?)
    }

    pub async fn shelves(&self, who: &Principal, after: Option<&str>, limit: Option<u32>) -> AppResult<(Vec<Shelf>, Option<String>)> {
        let limit = limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(AppError::validation("limit", "must be between 1 and 500"));
        }
        let after = after
            .filter(|c| !c.is_empty())
            .map(|c| c.parse::<ShelfId>().map_err(|_| AppError::validation("cursor", "is not a cursor this server issued")))
            .transpose()?;
        let mut items = self.store.list_shelves(&who.user_id, after.as_ref(), limit + 1).await?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|s| s.id.to_string())
        } else {
            None
        };
        Ok((items, next))
    }

    pub async fn shelf(&self, who: &Principal, id: &ShelfId) -> AppResult<Shelf> {
        Ok(self.store.shelf(&who.user_id, id).await?)
    }

    pub async fn edit_shelf(&self, who: &Principal, id: &ShelfId, expected_version: i64, edit: ShelfEdit) -> AppResult<Shelf> {
        let patch = ShelfPatch {
            name: edit.name.as_deref().map(|n| check_text("name", n, 200)).transpose()?,
            description: edit
                .description
                .map(|d| d.filter(|d| !d.trim().is_empty()).map(|d| check_text("description", &d, 2000)).transpose())
                .transpose()?,
            sort_order: edit.sort_order,
        };
        Ok(self.store.update_shelf(&who.user_id, id, Some(expected_version), patch, self.clock.now()).await?)
    }

    pub async fn delete_shelf(&self, who: &Principal, id: &ShelfId) -> AppResult<()> {
        Ok(self.store.delete_shelf(&who.user_id, id, self.clock.now()).await?)
    }

    pub async fn add_to_shelf(&self, who: &Principal, shelf: &ShelfId, book: &BookId) -> AppResult<ShelfItem> {
        Ok(self.store.add_shelf_item(&who.user_id, shelf, book, self.clock.now()).await?)
    }

    pub async fn shelf_items(&self, who: &Principal, shelf: &ShelfId) -> AppResult<Vec<ShelfItem>> {
        Ok(self.store.list_shelf_items(&who.user_id, shelf).await?)
    }

    pub async fn remove_from_shelf(&self, who: &Principal, shelf: &ShelfId, book: &BookId) -> AppResult<()> {
        Ok(self.store.remove_shelf_item(&who.user_id, shelf, book).await?)
    }
}
