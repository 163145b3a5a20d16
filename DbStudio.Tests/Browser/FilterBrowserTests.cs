// The Data tab's filters in Chromium (issue 14): several conditions, AND or OR, any REST operator, kept in the page URL —
// the same URL opened elsewhere shows the same rows.
using System.Text.RegularExpressions;
using Microsoft.Playwright;

namespace DbStudio.Tests.Browser;

public partial class PanelBrowserTests
{
    [Fact]
    public async Task Data_tab_filters_with_several_conditions_and_or_and_the_page_url_shares_the_view()
    {
        var (page, context, _) = await SignedInProjectAsync();
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "create table tasks (id serial primary key, title text, done boolean, prio int);\n" +
                                "insert into tasks (title, done, prio) select 'task ' || g, g % 2 = 0, g from generate_series(1, 10) g");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-1")).ToContainTextAsync("INSERT · 10 rows");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await page.Locator("#table-list").GetByText("tasks", new() { Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–10 of 10");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("[?&]db=tasks"));

        // prio > 8 OR title = 'task 1'.
        await page.SelectOptionAsync("#data-filter-column", "prio");
        await page.SelectOptionAsync("#data-filter-op", "gt");
        await page.FillAsync("#data-filter-value", "8");
        await page.ClickAsync("#data-filter-add");
        await page.SelectOptionAsync("#data-filter-column-1", "title");
        await page.SelectOptionAsync("#data-filter-op-1", "eq");
        await page.FillAsync("#data-filter-value-1", "task 1");
        await page.SelectOptionAsync("#data-filter-any", "any");
        await page.ClickAsync("#data-filter-apply");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("where=prio.gt.8&where=title.eq.task(%20|\\+)1&any=1"));
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-filter-or.png") });

        // AND: no row is both; then a negated REST operator: not done AND prio not in (1,2,3).
        await page.SelectOptionAsync("#data-filter-any", "all");
        await page.ClickAsync("#data-filter-apply");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("No rows on this page of 0");
        await page.SelectOptionAsync("#data-filter-column", "done");
        await page.SelectOptionAsync("#data-filter-op", "is");
        await page.FillAsync("#data-filter-value", "false");
        await page.SelectOptionAsync("#data-filter-column-1", "prio");
        await page.SelectOptionAsync("#data-filter-op-1", "not.in");
        await page.FillAsync("#data-filter-value-1", "(1,2,3)");
        await page.ClickAsync("#data-filter-apply");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3"); // 5, 7, 9
        await Assertions.Expect(page.Locator("#data-grid tbody tr:nth-child(1) td[data-column=title]")).ToHaveTextAsync("task 5");
        var shared = page.Url;
        Assert.DoesNotContain("any=", shared);

        // The URL, opened in another page: the panel opens on the table with the same filter and rows.
        var other = await context.NewPageAsync();
        other.SetDefaultTimeout(30_000);
        await other.GotoAsync(shared);
        // Once the circuit is up (the prerendered page does not answer clicks): a third condition box appears on a click.
        await UntilAsync(async () =>
        {
            await other.ClickAsync("#data-filter-add", new() { Timeout = 3000 });
            await Assertions.Expect(other.Locator("#data-filter-column-2")).ToBeVisibleAsync(new() { Timeout = 3000 });
        });
        await other.ClickAsync("#data-filter-remove-2");
        await Assertions.Expect(other.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3");
        await Assertions.Expect(other.Locator("#data-filter-op-1")).ToHaveValueAsync("not.in");
        await Assertions.Expect(other.Locator("#data-filter-value-1")).ToHaveValueAsync("(1,2,3)");
        await Assertions.Expect(other.Locator("#data-grid tbody tr:nth-child(3) td[data-column=title]")).ToHaveTextAsync("task 9");
        await other.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-filter-shared-url.png") });

        // Clear: the URL keeps only the table.
        await page.ClickAsync("#data-filter-clear");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–10 of 10");
        await Assertions.Expect(page).Not.ToHaveURLAsync(new Regex("where="));
        await context.CloseAsync();
    }
}
