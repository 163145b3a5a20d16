// Foreign keys in the Data tab in Chromium (issue 14): a reference cell shows the referenced row's label, its editor is a
// searchable picker over the referenced table that sets the reference, and a row's reference can be followed.
using Microsoft.Playwright;

namespace DbStudio.Tests.Browser;

public partial class PanelBrowserTests
{
    [Fact]
    public async Task Data_tab_shows_a_foreign_key_with_its_label_sets_it_with_a_searchable_picker_and_follows_it()
    {
        var (page, context, _) = await SignedInProjectAsync();
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page,
            "create table authors (id serial primary key, name text);\n" +
            "insert into authors (name) values ('Ursula Le Guin'), ('Ted Chiang'), ('Octavia Butler');\n" +
            "create table books (id serial primary key, title text, author_id int references authors(id));\n" +
            "insert into books (title, author_id) values ('The Dispossessed', 1), ('Exhalation', null)");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-3")).ToContainTextAsync("INSERT · 2 rows");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await page.Locator("#table-list").GetByText("books", new() { Exact = true }).ClickAsync();
        ILocator Cell(int row, string column) => page.Locator($"#data-grid tbody tr:nth-child({row}) td[data-column={column}]");
        await Assertions.Expect(Cell(1, "author_id").Locator(".fk-label")).ToHaveTextAsync("Ursula Le Guin");

        // The picker: focused, searching the authors' names as one types; a click sets the reference.
        await Cell(2, "author_id").ClickAsync();
        await Assertions.Expect(page.Locator("#ref-search")).ToBeFocusedAsync();
        await Assertions.Expect(page.Locator("#ref-options .ref-option")).ToHaveCountAsync(3);
        await page.Keyboard.TypeAsync("chi");
        await Assertions.Expect(page.Locator("#ref-options .ref-option")).ToHaveCountAsync(1);
        await Assertions.Expect(page.Locator("#ref-options .ref-option")).ToContainTextAsync("Ted Chiang");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-fk-picker.png") });
        await page.Locator("#ref-options .ref-option[data-key='2']").ClickAsync();
        await Assertions.Expect(page.Locator("#ref-search")).ToHaveCountAsync(0);
        await Assertions.Expect(Cell(2, "author_id").Locator(".fk-label")).ToHaveTextAsync("Ted Chiang");
        await Assertions.Expect(Cell(2, "author_id")).ToContainTextAsync("2");

        // Follow the reference: the authors table, on that row.
        await Cell(2, "author_id").Locator(".fk-follow").ClickAsync();
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–1 of 1");
        await Assertions.Expect(Cell(1, "name")).ToHaveTextAsync("Ted Chiang");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-fk-followed.png") });

        // The value, read back with SQL.
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "select author_id from books where title = 'Exhalation'");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-0 tbody")).ToContainTextAsync("2");
        await context.CloseAsync();
    }
}
