// Values longer than one SignalR message from the browser (Blazor Server's default is 32 KB): a long text typed or
// pasted into a Data-tab cell is saved whole, and the page stays connected. Screenshot: TestResults/screenshots/data-large-value.png.
using Microsoft.Playwright;

namespace DbStudio.Tests.Browser;

public partial class PanelBrowserTests
{
    [Fact]
    public async Task A_cell_edited_to_a_value_longer_than_one_browser_message_is_saved_whole()
    {
        var (page, context, _) = await SignedInProjectAsync();
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "create table notes (id serial primary key, body text); insert into notes (body) values ('short')");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-1")).ToContainTextAsync("INSERT · 1 row");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await page.Locator("#table-list").GetByText("notes", new() { Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–1 of 1");

        var cell = page.Locator("#data-grid tbody tr:nth-child(1) td[data-column=body]");
        await cell.ClickAsync();
        var input = cell.Locator("#cell-editor-input");
        await Assertions.Expect(input).ToBeFocusedAsync();
        var text = string.Concat(Enumerable.Repeat("a long note, ", 10_000)); // 130,000 characters
        await input.FillAsync(text);
        await page.Keyboard.PressAsync("Enter");
        await Assertions.Expect(page.Locator("#cell-editor-input")).ToHaveCountAsync(0);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-large-value.png") });

        // Saved whole, as the console reads it back.
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "select length(body) as chars from notes");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-0")).ToContainTextAsync(text.Length.ToString());
        await context.CloseAsync();
    }
}
