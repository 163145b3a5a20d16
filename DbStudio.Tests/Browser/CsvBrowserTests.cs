// CSV in and out of the Data tab in Chromium (issue 14): a file with 3 bad rows shows their lines in the dry run and
// imports nothing until fixed; a file as a new table with types inferred (one changed before creating), created with its
// rows in one transaction (a bad row leaves no table); export of the whole table and of the current filter, in the order
// shown. Screenshots under TestResults/screenshots.
using System.Text;
using Microsoft.Playwright;

namespace DbStudio.Tests.Browser;

public partial class PanelBrowserTests
{
    [Fact]
    public async Task Data_tab_csv_dry_run_lists_the_bad_rows_by_line_imports_nothing_until_fixed_and_exports()
    {
        var (page, context, _) = await SignedInProjectAsync();
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "create table people (id int primary key, name text not null, age int, born date)");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-0")).ToContainTextAsync("CREATE TABLE");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await page.Locator("#table-list").GetByText("people", new() { Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("No rows on this page of 0");

        static FilePayload File(string name, string text) => new() { Name = name, MimeType = "text/csv", Buffer = Encoding.UTF8.GetBytes(text) };
        const string bad = "id,name,age,born\n" +
                           "1,Ann,30,1990-01-01\n" +
                           "2,Bob,abc,1991-02-02\n" +      // line 3: not an integer
                           "3,Cy,40,1992-03-03\n" +
                           "4,,20,1993-01-01\n" +          // line 5: NULL name
                           "5,Di,50,not a date\n" +        // line 6: not a date
                           "6,Ed,60,1994-04-04\n";
        await page.ClickAsync("#data-import");
        await ChooseFileAsync(page, "csv-file", File("people.csv", bad));
        var preview = page.Locator("#csv-preview");
        await Assertions.Expect(preview.Locator("th[data-column=age]")).ToContainTextAsync("→ age integer");
        await Assertions.Expect(preview.Locator("tbody tr")).ToHaveCountAsync(5);
        await page.ClickAsync("#csv-dry-run");
        await Assertions.Expect(page.Locator("#csv-result")).ToContainTextAsync("Dry run: 3 bad rows of 6");
        var errors = page.Locator("#csv-errors tbody tr");
        await Assertions.Expect(errors).ToHaveCountAsync(3);
        Assert.Equal(["3", "5", "6"], await errors.EvaluateAllAsync<string[]>("rows => rows.map(r => r.dataset.line)"));
        await Assertions.Expect(page.Locator("#csv-errors tr[data-line='3']")).ToContainTextAsync("invalid input syntax for type integer");
        await Assertions.Expect(page.Locator("#csv-errors tr[data-line='3']")).ToContainTextAsync("age");
        await Assertions.Expect(page.Locator("#csv-errors tr[data-line='5']")).ToContainTextAsync("23502");
        await Assertions.Expect(page.Locator("#csv-errors tr[data-line='6']")).ToContainTextAsync("born");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "csv-dry-run-bad-rows.png") });

        // The real run refuses the file as a whole: nothing goes in.
        await page.ClickAsync("#csv-run");
        await Assertions.Expect(page.Locator("#csv-result")).ToContainTextAsync("Import refused: 3 bad rows of 6: nothing was imported");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("No rows on this page of 0");

        // Fixed: the dry run passes and imports nothing, the real run imports every row.
        var good = bad.Replace("Bob,abc", "Bob,35").Replace("4,,20", "4,Cat,20").Replace("not a date", "1995-05-05");
        await ChooseFileAsync(page, "csv-file", File("people.csv", good));
        await page.ClickAsync("#csv-dry-run");
        await Assertions.Expect(page.Locator("#csv-result")).ToContainTextAsync("Dry run: all 6 rows can be imported");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("No rows on this page of 0");
        await page.ClickAsync("#csv-run");
        await Assertions.Expect(page.Locator("#csv-result")).ToContainTextAsync("Imported 6 rows");
        await Assertions.Expect(page.Locator("#csv-progress")).ToContainTextAsync("100 %");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–6 of 6");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "csv-imported.png") });

        // Export: the whole table (streamed by the export API), then the current filter.
        var whole = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#data-export"));
        var lines = (await System.IO.File.ReadAllTextAsync((await whole.PathAsync())!)).TrimEnd().Split('\n');
        Assert.Equal("id,name,age,born", lines[0]);
        Assert.Equal(7, lines.Length);
        await page.SelectOptionAsync("#data-filter-column", "age");
        await page.SelectOptionAsync("#data-filter-op", "gt");
        await page.FillAsync("#data-filter-value", "40");
        await page.ClickAsync("#data-filter-apply");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–2 of 2");
        var filtered = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#data-export-filtered"));
        var rows = (await System.IO.File.ReadAllTextAsync((await filtered.PathAsync())!)).TrimEnd().Split('\n');
        Assert.Equal(["id,name,age,born", "5,Di,50,1995-05-05", "6,Ed,60,1994-04-04"], rows);
        // In the order shown: sorted by age, descending (the export API streams it with COPY, the filter and order in its URL).
        await page.Locator("#data-grid th", new() { HasText = "age" }).ClickAsync();
        await page.Locator("#data-grid th", new() { HasText = "age" }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-grid th", new() { HasText = "age" })).ToContainTextAsync("▼");
        await Assertions.Expect(page.Locator("#data-export-filtered")).ToHaveAttributeAsync("href", new System.Text.RegularExpressions.Regex("where=age\\.gt\\.40.*order="));
        filtered = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("#data-export-filtered"));
        rows = (await System.IO.File.ReadAllTextAsync((await filtered.PathAsync())!)).TrimEnd().Split('\n');
        Assert.Equal(["id,name,age,born", "6,Ed,60,1994-04-04", "5,Di,50,1995-05-05"], rows);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "csv-export-filtered.png") });
        await context.CloseAsync();
    }

    [Fact]
    public async Task Data_tab_imports_a_csv_as_a_new_table_with_types_inferred_and_one_changed_and_a_bad_row_leaves_no_table()
    {
        var (page, context, _) = await SignedInProjectAsync();
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await page.ClickAsync("#data-import-new");
        const string sales = "sku,qty,price,sold_on,paid,meta\n" +
                             "A-1,3,9.99,2024-01-31,true,\"{\"\"c\"\":\"\"red\"\"}\"\n" +
                             "B-2,1,19.50,2024-02-01,false,\"{\"\"c\"\":\"\"blue\"\"}\"\n" +
                             "C-3,12,5,2024-02-02,true,[]\n";
        await ChooseFileAsync(page, "csv-file", new FilePayload { Name = "Sales 2024.csv", MimeType = "text/csv", Buffer = Encoding.UTF8.GetBytes(sales) });
        await Assertions.Expect(page.Locator("#csv-table-name")).ToHaveValueAsync("sales_2024");
        foreach (var (index, type) in new[] { (0, "TEXT"), (1, "INTEGER"), (2, "NUMERIC"), (3, "DATE"), (4, "BOOLEAN"), (5, "JSONB") })
            await Assertions.Expect(page.Locator($"#csv-type-{index}")).ToHaveValueAsync(type);
        await page.SelectOptionAsync("#csv-type-1", "BIGINT");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "csv-new-table-types.png") });

        // sku made an INTEGER: every row is bad. The table is created with its rows in one transaction, so neither the dry
        // run nor the refused real run leaves a table behind.
        await page.SelectOptionAsync("#csv-type-0", "INTEGER");
        await page.ClickAsync("#csv-dry-run");
        await Assertions.Expect(page.Locator("#csv-result")).ToContainTextAsync("Dry run: 3 bad rows of 3: nothing was imported and no table was created");
        await Assertions.Expect(page.Locator("#csv-errors tr[data-line='2']")).ToContainTextAsync("invalid input syntax for type integer");
        await Assertions.Expect(page.Locator("#csv-run")).ToContainTextAsync("Create sales_2024 and import");
        await page.ClickAsync("#csv-run");
        await Assertions.Expect(page.Locator("#csv-result[data-run=real]")).ToContainTextAsync("Import refused: 3 bad rows of 3: nothing was imported and no table was created");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "csv-new-table-refused.png") });
        await Assertions.Expect(page.Locator("#table-list")).Not.ToContainTextAsync("sales_2024");

        await page.SelectOptionAsync("#csv-type-0", "TEXT");
        await page.ClickAsync("#csv-run");
        await Assertions.Expect(page.Locator("#csv-result[data-run=real]")).ToContainTextAsync("Created sales_2024 and imported 3 rows");
        await Assertions.Expect(page.Locator("#table-list")).ToContainTextAsync("sales_2024");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "csv-new-table-imported.png") });
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3");
        await Assertions.Expect(page.Locator("#data-grid tbody tr:nth-child(3) td[data-column=sku]")).ToHaveTextAsync("C-3");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Schema" }).ClickAsync();
        var columns = page.Locator("#schema-columns");
        await Assertions.Expect(columns.Locator("tr", new() { HasText = "qty" })).ToContainTextAsync("bigint");
        await Assertions.Expect(columns.Locator("tr", new() { HasText = "meta" })).ToContainTextAsync("jsonb");
        await Assertions.Expect(columns.Locator("tr", new() { HasText = "sold_on" })).ToContainTextAsync("date");
        await context.CloseAsync();
    }
}
