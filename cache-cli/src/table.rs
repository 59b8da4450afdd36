//! Tables for people.

use comfy_table::{presets, CellAlignment, ContentArrangement, Table, TableComponent};

/// A table with `headers`; columns named in `right` are right-aligned
/// (numbers).
pub fn new(headers: &[&str], right: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(presets::UTF8_HORIZONTAL_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.to_vec());
    // A line under the header and around the table, none between rows.
    table.remove_style(TableComponent::HorizontalLines);
    table.remove_style(TableComponent::MiddleIntersections);
    table.remove_style(TableComponent::LeftBorderIntersections);
    table.remove_style(TableComponent::RightBorderIntersections);
    for (i, header) in headers.iter().enumerate() {
        if right.contains(header) {
            if let Some(column) = table.column_mut(i) {
                column.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    table
}
