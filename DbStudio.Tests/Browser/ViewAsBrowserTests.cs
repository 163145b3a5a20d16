// "View as" in Chromium (issue 14): on a table with own-row policies, the ANON key sees fewer rows than an end user, who
// sees fewer than admin — through the REST API's own logins and claims — with the policies that decided it listed, the
// hand-written ones too; and the SQL tab runs a SELECT as such a caller, read-only, with the policies beside the result.
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
        var ann = await SignUpAsync(page, projectId);
        var bob = await SignUpAsync(page, projectId);

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

        // A hand-written policy (the SQL tab's) is listed beside the Access settings, with its USING expression.
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, $"create policy team_notes on notes for select to proj_{projectId}_user using (body like 'team%')");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-0")).ToContainTextAsync("CREATE POLICY");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await page.Locator("#table-list").GetByText("notes", new() { Exact = true }).ClickAsync();
        await page.SelectOptionAsync("#data-view-as", bob);
        await Assertions.Expect(page.Locator("#data-view-as-policies [data-policy=team_notes]")).ToContainTextAsync("USING (body ~~ 'team%'::text)");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-view-as-hand-written-policy.png") });

        // Back to admin: every row, editable again.
        await page.SelectOptionAsync("#data-view-as", "admin");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3");
        await Assertions.Expect(page.Locator("#data-view-as-policies")).ToHaveCountAsync(0);
        await Assertions.Expect(page.Locator("#data-insert")).ToBeVisibleAsync();
        await context.CloseAsync();
    }

    [Fact]
    public async Task Sql_tab_runs_a_select_as_an_end_user_or_the_anon_key_read_only_with_the_policies_that_applied_beside_it()
    {
        var (page, context, projectId) = await SignedInProjectAsync();
        var ann = await SignUpAsync(page, projectId);
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "create table notes (id serial primary key, body text, user_id uuid);\n" +
                                $"insert into notes (body, user_id) values ('ann''s note', '{ann}'), ('someone''s note', gen_random_uuid()), ('team plan', null);\n" +
                                $"create policy team_notes on notes for select to proj_{projectId}_user using (body like 'team%')");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-2")).ToContainTextAsync("CREATE POLICY");

        async Task RunAsync(string who, string label, string sql)
        {
            await page.SelectOptionAsync("#sql-run-as", who);
            await Assertions.Expect(page.Locator("#sql-run-as-caption")).ToContainTextAsync(label);
            await SetSqlAsync(page, sql);
            await page.ClickAsync("#sql-run");
        }

        // Ann: her own row and the team's — what her session token gets from the REST API — and why.
        await RunAsync(ann, "(user)", "select body from notes order by id");
        await Assertions.Expect(page.Locator("#sql-result-0")).ToContainTextAsync("SELECT · 2 rows");
        await Assertions.Expect(page.Locator("#sql-result-0 tbody")).ToContainTextAsync("ann's note");
        await Assertions.Expect(page.Locator("#sql-result-0 tbody")).Not.ToContainTextAsync("someone's note");
        var why = page.Locator("#sql-view-as-policies");
        await Assertions.Expect(why).ToContainTextAsync("auth_select_own");
        await Assertions.Expect(why.Locator("[data-policy=team_notes]")).ToContainTextAsync("permissive");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "sql-run-as-user.png") });

        // A write is refused by PostgreSQL: the transaction is read-only.
        await RunAsync(ann, "(user)", "update notes set body = 'mine'");
        await Assertions.Expect(page.Locator("#sql-result-0 .sql-error")).ToContainTextAsync("25006");
        await Assertions.Expect(page.Locator("#sql-result-0 .sql-error")).ToContainTextAsync("cannot execute UPDATE in a read-only transaction");

        // The ANON key: anon_select is off, so PostgreSQL refuses the table.
        await RunAsync("anon", "ANON key", "select body from notes");
        await Assertions.Expect(page.Locator("#sql-result-0 .sql-error")).ToContainTextAsync("permission denied for table notes");
        await Assertions.Expect(why).ToContainTextAsync("anon_select is off");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "sql-run-as-anon.png") });

        // The console itself again: the owner, every row, nothing to explain.
        await page.SelectOptionAsync("#sql-run-as", "owner");
        await Assertions.Expect(page.Locator("#sql-run-as-caption")).ToContainTextAsync($"runs as proj_{projectId}_owner");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-0")).ToContainTextAsync("SELECT · 3 rows");
        await Assertions.Expect(why).ToHaveCountAsync(0);
        await context.CloseAsync();
    }

    /// <summary>Signs an end user up through the project's auth API (the ANON key from the credentials box); their id.</summary>
    private async Task<string> SignUpAsync(IPage page, string projectId)
    {
        var anonKey = (await page.Locator("#cred-anon").InnerTextAsync()).Trim();
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        var res = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, $"/db/{projectId}/auth/signup")
        {
            Headers = { { "apikey", anonKey } },
            Content = JsonContent.Create(new { email = $"viewer{Guid.NewGuid():N}@example.com", password = "a user password" }),
        });
        res.EnsureSuccessStatusCode();
        return (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("user").GetProperty("id").GetString()!;
    }
}
