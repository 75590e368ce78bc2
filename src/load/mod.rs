//! Reading the repository: deploy.yml and role.yml, the inventory, vars
//! files and age-encrypted secrets. Reads local files only.

pub mod inventory;
pub mod project;
pub mod secrets;
pub mod yaml;
