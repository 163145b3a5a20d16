// The Data tab by hand in Chromium (issue 14): click → type → Enter edits a cell, Tab moves on, Esc cancels, and a row
// opens in a side form for edit and insert. Screenshots under TestResults/screenshots.
using Microsoft.Playwright;

namespace DbStudio.Tests.Browser;

public partial class PanelBrowserTests
{
    [Fact]
    public async Task Data_tab_click_type_enter_edits_a_cell_tab_moves_on_and_a_row_opens_in_a_side_form()
    {
        var (page, context, _) = await SignedInProjectAsync();
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page,
            "create table items (id serial primary key, name text not null, qty int, meta jsonb, note text);\n" +
            "insert into items (name, qty, meta) select 'item ' || g, g, jsonb_build_object('n', g) from generate_series(1, 3) g");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-1")).ToContainTextAsync("INSERT · 3 rows");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await page.Locator("#table-list").GetByText("items", new() { Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3");
        ILocator Cell(int row, string column) => page.Locator($"#data-grid tbody tr:nth-child({row}) td[data-column={column}]");
        ILocator EditorIn(int row, string column) => Cell(row, column).Locator("#cell-editor-input");

        // One click: the editor is focused with its text selected, so the keys typed next replace it; Enter saves.
        await Cell(1, "name").ClickAsync();
        await Assertions.Expect(EditorIn(1, "name")).ToBeFocusedAsync();
        Assert.Equal("item 1", await EditorIn(1, "name").EvaluateAsync<string>("e => e.value.substring(e.selectionStart, e.selectionEnd)"));
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-cell-editor-focused.png") });
        await page.Keyboard.TypeAsync("typed by hand");
        await page.Keyboard.PressAsync("Enter");
        await Assertions.Expect(Cell(1, "name")).ToHaveTextAsync("typed by hand");
        await Assertions.Expect(page.Locator("#cell-editor-input")).ToHaveCountAsync(0);

        // Esc cancels.
        await Cell(1, "name").ClickAsync();
        await Assertions.Expect(EditorIn(1, "name")).ToBeFocusedAsync();
        await page.Keyboard.TypeAsync("thrown away");
        await page.Keyboard.PressAsync("Escape");
        await Assertions.Expect(page.Locator("#cell-editor-input")).ToHaveCountAsync(0);
        await Assertions.Expect(Cell(1, "name")).ToHaveTextAsync("typed by hand");

        // Tab saves and moves to the next cell, focused and selected in turn; past the last column, the next row.
        await Cell(1, "qty").ClickAsync();
        await Assertions.Expect(EditorIn(1, "qty")).ToBeFocusedAsync();
        await page.Keyboard.TypeAsync("7");
        await page.Keyboard.PressAsync("Tab");
        await Assertions.Expect(EditorIn(1, "meta")).ToBeFocusedAsync();
        await Assertions.Expect(Cell(1, "qty")).ToHaveTextAsync("7");
        await page.Keyboard.PressAsync("Tab");
        await Assertions.Expect(EditorIn(1, "note")).ToBeFocusedAsync();
        await page.Keyboard.TypeAsync("a note");
        await page.Keyboard.PressAsync("Tab");
        await Assertions.Expect(EditorIn(2, "id")).ToBeFocusedAsync();
        await Assertions.Expect(Cell(1, "note")).ToHaveTextAsync("a note");
        await page.Keyboard.PressAsync("Shift+Tab");
        await Assertions.Expect(EditorIn(1, "note")).ToBeFocusedAsync();
        await page.Keyboard.PressAsync("Escape");

        // A row in the side form: every column, JSON in a large editor, a NULL toggle per nullable column.
        await page.Locator("#data-grid tbody tr:nth-child(2) .row-open").ClickAsync();
        var form = page.Locator("#data-row-form");
        await Assertions.Expect(page.Locator("#data-row-form-title")).ToHaveTextAsync("Edit row");
        foreach (var column in new[] { "id", "name", "qty", "meta", "note" })
            await Assertions.Expect(form.Locator($"[data-column={column}]")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#form-meta")).ToHaveValueAsync(new System.Text.RegularExpressions.Regex("\"n\": 2"));
        await Assertions.Expect(page.Locator("#form-null-name")).ToHaveCountAsync(0); // NOT NULL: no toggle
        await page.FillAsync("#form-name", "edited in the form");
        await page.FillAsync("#form-meta", "{\n  \"n\": 2,\n  \"tags\": [\"a\", \"b\"]\n}");
        await page.CheckAsync("#form-null-qty");
        await Assertions.Expect(page.Locator("#form-qty")).ToBeDisabledAsync();
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-row-form.png") });
        await page.ClickAsync("#form-save");
        await Assertions.Expect(form).ToHaveCountAsync(0);
        await Assertions.Expect(Cell(2, "name")).ToHaveTextAsync("edited in the form");
        await Assertions.Expect(Cell(2, "qty").Locator(".null-value")).ToHaveTextAsync("NULL");
        await Assertions.Expect(Cell(2, "meta")).ToContainTextAsync("tags");

        // Insert through the same form; bad JSON is refused before anything is sent.
        await page.ClickAsync("#data-insert");
        await Assertions.Expect(page.Locator("#data-row-form-title")).ToHaveTextAsync("New row");
        await page.FillAsync("#form-name", "inserted in the form");
        await page.FillAsync("#form-meta", "{bad");
        await page.ClickAsync("#form-save");
        await Assertions.Expect(page.Locator("#form-error")).ToContainTextAsync("Not valid JSON");
        await page.FillAsync("#form-meta", "{\"n\": 4}");
        await page.ClickAsync("#form-save");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–4 of 4");
        await Assertions.Expect(Cell(4, "name")).ToHaveTextAsync("inserted in the form");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-tab-by-hand.png") });
        await context.CloseAsync();
    }
}
