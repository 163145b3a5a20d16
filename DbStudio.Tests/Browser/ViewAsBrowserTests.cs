// "View as" in Chromium (issue 14): on a table with own-row policies, the ANON key sees fewer rows than an end user, who
// sees fewer than admin — through the REST API's own logins and claims — with the policies that decided it listed.
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;

namespace DbStudio.Tests.Browser;

public partial class PanelBrowserTests
{
    [Fact]
    public async Task Data_tab_view_as_shows_fewer_rows_for_anon_and_an_end_user_than_for_admin_with_the_policies_listed()
    {
        var (page, context, projectId) = await SignedInProjectAsync();
        var anonKey = (await page.Locator("#cred-anon").InnerTextAsync()).Trim();
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        async Task<string> SignUpAsync()
        {
            var res = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, $"/db/{projectId}/auth/signup")
            {
                Headers = { { "apikey", anonKey } },
                Content = JsonContent.Create(new { email = $"viewer{Guid.NewGuid():N}@example.com", password = "a user password" }),
            });
            res.EnsureSuccessStatusCode();
            return (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("user").GetProperty("id").GetString()!;
        }
        var ann = await SignUpAsync();
        var bob = await SignUpAsync();

        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "create table notes (id serial primary key, body text, user_id uuid);\n" +
                                $"insert into notes (body, user_id) values ('ann''s note', '{ann}'), ('bob''s note', '{bob}'), ('nobody''s note', null)");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-1")).ToContainTextAsync("INSERT · 3 rows");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await page.Locator("#table-list").GetByText("notes", new() { Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3"); // admin: every row

        // Ann, a signed-in end user: her own row only, and why.
        await page.SelectOptionAsync("#data-view-as", ann);
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–1 of 1");
        await Assertions.Expect(page.Locator("#data-grid tbody")).ToContainTextAsync("ann's note");
        await Assertions.Expect(page.Locator("#data-view-as-policies")).ToContainTextAsync("auth_select_own");
        await Assertions.Expect(page.Locator("#data-view-as-policies")).ToContainTextAsync(ann);
        await Assertions.Expect(page.Locator("#data-insert")).ToHaveCountAsync(0); // read-only as someone else
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-view-as-user.png") });

        // The ANON key: anon_select is off, so no row — PostgreSQL's refusal as the API gives it.
        await page.SelectOptionAsync("#data-view-as", "anon");
        await Assertions.Expect(page.Locator("#data-view-as-policies")).ToContainTextAsync("anon_select is off");
        await Assertions.Expect(page.Locator("#data-grid tbody tr")).ToHaveCountAsync(0);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-view-as-anon.png") });

        // Back to admin: every row, editable again.
        await page.SelectOptionAsync("#data-view-as", "admin");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3");
        await Assertions.Expect(page.Locator("#data-view-as-policies")).ToHaveCountAsync(0);
        await Assertions.Expect(page.Locator("#data-insert")).ToBeVisibleAsync();
        await context.CloseAsync();
    }
}
