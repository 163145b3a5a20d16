// The panel in a real browser: Playwright drives Debian's Chromium against the app on its real port.
// One screenshot per tab is saved under TestResults/screenshots.
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Playwright;

namespace DbStudio.Tests.Browser;

public partial class PanelBrowserTests(TestApp app) : IAsyncLifetime
{
    private IPlaywright _playwright = null!;
    private IBrowser _browser = null!;
    private static readonly string Shots = Path.Combine(AppContext.BaseDirectory, "TestResults", "screenshots");

    public async ValueTask InitializeAsync()
    {
        _playwright = await Playwright.CreateAsync();
        _browser = await _playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = "/usr/bin/chromium", Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
        });
        Directory.CreateDirectory(Shots);
    }

    public async ValueTask DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
    }

    [Fact]
    public async Task Register_create_a_project_and_use_every_tab_of_the_db_panel()
    {
        var context = await _browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new() { Width = 1400, Height = 900 } });
        var page = await context.NewPageAsync();
        _lastPage = page;
        page.SetDefaultTimeout(30_000);
        var baseUrl = app.BaseUrl.ToString().TrimEnd('/');
        var email = $"ui{Guid.NewGuid():N}@example.com";

        // Register (a static form), which answers alike for new and registered emails: on to sign in, with a notice.
        await page.GotoAsync($"{baseUrl}/account/register");
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", "browser password");
        await page.ClickAsync("button[type=submit]");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("/account/login\\?registered=1$"));
        await Assertions.Expect(page.Locator("#account-notice")).ToContainTextAsync("Sign in with your email and password");
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", "browser password");
        await page.ClickAsync("button[type=submit]");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("/projects$"));
        await Assertions.Expect(page.Locator("#signed-in-as")).ToHaveTextAsync(email);

        // Sign out, then sign in through the login form.
        await page.GetByRole(AriaRole.Button, new() { Name = "Sign out" }).ClickAsync();
        await page.GotoAsync($"{baseUrl}/projects");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("/account/login"));
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", "browser password");
        await page.ClickAsync("button[type=submit]");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("/projects$"));
        await Assertions.Expect(page.Locator("#signed-in-as")).ToHaveTextAsync(email);

        // Create a project.
        var name = Input(page, "new-project-name");
        await UntilAsync(async () =>
        {
            await name.FillAsync("Browser shop");
            await page.ClickAsync("#create-project");
            await Assertions.Expect(page).ToHaveURLAsync(new Regex("/projects/[a-z0-9]+$"), new() { Timeout = 3000 });
        });
        await Assertions.Expect(page.Locator("#project-name")).ToHaveTextAsync("Browser shop");
        await Assertions.Expect(page.Locator("#chart-requests-total")).ToContainTextAsync("ANON key: 0");
        var projectId = page.Url[(page.Url.LastIndexOf('/') + 1)..];

        // The footer's DB button opens the panel; the credentials box is bottom-left.
        await OpenPanelAsync(page);
        await Assertions.Expect(page.Locator("#cred-schema")).ToHaveTextAsync($"proj_{projectId}");
        await Assertions.Expect(page.Locator("#cred-rest")).ToHaveTextAsync($"{baseUrl}/db/{projectId}/rest");
        var anonKey = await page.Locator("#cred-anon").InnerTextAsync();
        Assert.StartsWith("anon_", anonKey);
        await Assertions.Expect(page.Locator("#cred-api")).Not.ToContainTextAsync("dak_"); // masked until revealed
        await page.ClickAsync("#cred-api-reveal");
        await Assertions.Expect(page.Locator("#cred-api")).ToContainTextAsync("dak_");
        await Assertions.Expect(page.Locator("#cred-conn")).ToContainTextAsync("••••");
        // supabase-js: the Supabase URL and a createClient snippet, each one click from the clipboard.
        await Assertions.Expect(page.Locator("#cred-supabase")).ToHaveTextAsync($"{baseUrl}/db/{projectId}/supabase");
        await Assertions.Expect(page.Locator("#cred-supabase-snippet")).ToHaveTextAsync($"createClient('{baseUrl}/db/{projectId}/supabase', '{anonKey.Trim()}')");
        await Assertions.Expect(page.Locator("#cred-supabase-snippet-copy")).ToBeVisibleAsync();
        await page.Locator("#credentials").ScreenshotAsync(new() { Path = Path.Combine(Shots, "credentials-supabase.png") });

        // SQL tab: create a table and insert 120 rows; the row count shows.
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, 
            "create table products (id serial primary key, name text not null, price numeric(10,2), in_stock boolean default true, meta jsonb, added timestamptz default now());\n" +
            "insert into products (name, price, meta) select 'product ' || g, g * 1.5, jsonb_build_object('n', g) from generate_series(1, 120) g");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-1")).ToContainTextAsync("INSERT · 120 rows");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "sql-tab.png") });

        // A SQL error shows inline with its SQLSTATE and the position marked.
        await SetSqlAsync(page, "select nope from products");
        await page.Locator("#sql-input .monaco-editor[role=code] textarea").FocusAsync();
        await page.Keyboard.PressAsync("Control+Enter"); // runs from inside the editor
        await Assertions.Expect(page.Locator("#sql-input .sql-error-mark").First).ToBeVisibleAsync(); // the position, marked in the editor
        await Assertions.Expect(page.Locator("#sql-result-0 .sql-error")).ToContainTextAsync("42703");
        await Assertions.Expect(page.Locator("#sql-result-0 .sql-error pre")).ToContainTextAsync("^");

        // Data tab: 50 rows a page with the total.
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await page.Locator("#table-list").GetByText("products", new() { Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–50 of 120");
        await Assertions.Expect(page.Locator("#data-grid tbody tr")).ToHaveCountAsync(50);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-tab.png") });
        await page.ClickAsync("#data-next");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 51–100 of 120");
        await page.ClickAsync("#data-next");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 101–120 of 120");
        await Assertions.Expect(page.Locator("#data-grid tbody tr")).ToHaveCountAsync(20);

        // Schema tab: columns with type, nullable, default and primary key.
        await page.GetByRole(AriaRole.Tab, new() { Name = "Schema" }).ClickAsync();
        var columns = page.Locator("#schema-columns");
        await Assertions.Expect(columns).ToContainTextAsync("numeric(10,2)");
        await Assertions.Expect(columns).ToContainTextAsync("timestamp with time zone");
        await Assertions.Expect(columns.Locator("tr", new() { HasText = "id" }).First).ToContainTextAsync("✓");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "schema-tab.png") });

        // Access tab: anon may not read until anon_select is turned on; then the ANON key reads over REST.
        var http = new HttpClient { BaseAddress = app.BaseUrl };
        async Task<HttpResponseMessage> AnonGet()
        {
            var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{projectId}/rest/products?select=id,name&limit=3&order=id");
            req.Headers.Add("apikey", anonKey);
            return await http.SendAsync(req);
        }
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await AnonGet()).StatusCode);
        await page.GetByRole(AriaRole.Tab, new() { Name = "Access" }).ClickAsync();
        await Assertions.Expect(page.Locator("#access-sql")).ToContainTextAsync("ENABLE ROW LEVEL SECURITY");
        await Input(page, "access-anon-select").CheckAsync();
        await page.ClickAsync("#access-save");
        await Assertions.Expect(page.Locator("#access-sql")).ToContainTextAsync("dbstudio_anon_select");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "access-tab.png") });
        var res = await AnonGet();
        Assert.Equal(System.Net.HttpStatusCode.OK, res.StatusCode);
        var rows = JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("product 1", rows[0].GetProperty("name").GetString());

        // The project page's overview: rows per table and the REST requests just made, by auth level.
        await page.ClickAsync("#db-button");
        await page.ReloadAsync();
        await Assertions.Expect(page.Locator("#chart-requests-total")).ToContainTextAsync("ANON key: 2");
        await Assertions.Expect(page.Locator("#project-charts")).ToContainTextAsync("products: 120");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "project-page.png") });
        await context.CloseAsync();
    }

    [Fact]
    public async Task Schema_tab_creates_a_table_with_several_types_and_adds_and_deletes_a_column()
    {
        var (page, context, projectId) = await SignedInProjectAsync();
        await page.GetByRole(AriaRole.Tab, new() { Name = "Schema" }).ClickAsync();
        await page.ClickAsync("#schema-new-table");
        await Input(page, "schema-table-name").FillAsync("orders");
        await Input(page, "schema-new-name-1").FillAsync("customer");
        async Task AddDraft(int index, string name, string type)
        {
            await page.ClickAsync("#schema-add-draft-column");
            await Input(page, $"schema-new-name-{index}").FillAsync(name);
            await ChooseAsync(page, $"schema-new-type-{index}", type);
        }
        await AddDraft(2, "total", "NUMERIC");
        await AddDraft(3, "paid", "BOOLEAN");
        await AddDraft(4, "placed", "TIMESTAMPTZ");
        await Input(page, "schema-new-default-4").FillAsync("now()");
        await Input(page, "schema-owner-column").CheckAsync();
        await page.ClickAsync("#schema-create-table");
        var columns = page.Locator("#schema-columns");
        await Assertions.Expect(columns).ToContainTextAsync("customer");
        foreach (var expected in new[] { "numeric", "boolean", "timestamp with time zone", "now()", "user_id", "uuid" })
            await Assertions.Expect(columns).ToContainTextAsync(expected);
        await Assertions.Expect(page.Locator("#table-list")).ToContainTextAsync("orders");

        await Input(page, "schema-add-name-0").FillAsync("note");
        await page.ClickAsync("#schema-add-column");
        await Assertions.Expect(columns.Locator("td", new() { HasText = "note" })).ToHaveCountAsync(1);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "schema-tab-editing.png") });
        await page.ClickAsync("#schema-drop-note");
        await page.ClickAsync("#schema-drop-note-confirm");
        await Assertions.Expect(columns.Locator("td", new() { HasText = "note" })).ToHaveCountAsync(0);

        // A bad default is refused with PostgreSQL's message, and nothing is added.
        await Input(page, "schema-add-name-0").FillAsync("qty");
        await ChooseAsync(page, "schema-add-type-0", "INTEGER");
        await Input(page, "schema-add-default-0").FillAsync("'many'");
        await page.ClickAsync("#schema-add-column");
        await Assertions.Expect(page.Locator("#schema-error")).ToContainTextAsync("22P02");
        await Assertions.Expect(columns.Locator("td", new() { HasText = "qty" })).ToHaveCountAsync(0);
        await context.CloseAsync();
    }

    [Fact]
    public async Task Schema_tab_changes_a_column_shows_a_refused_type_change_and_adds_a_foreign_key_and_an_index()
    {
        var (page, context, _) = await SignedInProjectAsync();
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "create table authors (id serial primary key, name text);\n" +
                                "create table books (id serial primary key, author_id integer, code text);\n" +
                                "insert into books (code) values ('abc')");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-2")).ToContainTextAsync("INSERT · 1 row");
        await page.Locator("#table-list").GetByText("books", new() { Exact = true }).ClickAsync();
        await page.GetByRole(AriaRole.Tab, new() { Name = "Schema" }).ClickAsync();
        var columns = page.Locator("#schema-columns");
        await Assertions.Expect(columns).ToContainTextAsync("author_id");

        // text → integer: 'abc' does not convert; PostgreSQL's message is shown and nothing changes.
        await page.ClickAsync("#schema-edit-code");
        await ChooseAsync(page, "schema-edit-type", "INTEGER");
        await page.ClickAsync("#schema-edit-save");
        await Assertions.Expect(page.Locator("#schema-error")).ToContainTextAsync("22P02");
        await Assertions.Expect(page.Locator("#schema-error")).ToContainTextAsync("invalid input syntax for type integer");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "schema-type-change-refused.png") });
        await Assertions.Expect(columns.Locator("tr", new() { HasText = "code" })).ToContainTextAsync("text");

        // A rename goes through (the form opened again keeps the type).
        await page.ClickAsync("#schema-edit-code");
        await Input(page, "schema-edit-name").FillAsync("code_text");
        await page.ClickAsync("#schema-edit-save");
        await Assertions.Expect(columns).ToContainTextAsync("code_text");

        // A foreign key to authors(id), on delete cascade, and an index.
        await ChooseAsync(page, "schema-fk-column", "author_id");
        await ChooseAsync(page, "schema-fk-table", "authors");
        await Assertions.Expect(page.Locator("#schema-fk-ref-column")).ToHaveValueAsync("id");
        await ChooseAsync(page, "schema-fk-on-delete", "cascade");
        await page.ClickAsync("#schema-add-fk");
        var constraints = page.Locator("#schema-constraints");
        await Assertions.Expect(constraints).ToContainTextAsync("FOREIGN KEY (author_id) REFERENCES authors(id) ON DELETE CASCADE");
        await ChooseAsync(page, "schema-index-column", "code_text");
        await page.ClickAsync("#schema-add-index");
        await Assertions.Expect(constraints).ToContainTextAsync("books_code_text_idx");
        await page.GetByText("DDL", new() { Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator("#schema-ddl")).ToContainTextAsync("CREATE INDEX books_code_text_idx");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "schema-relations.png") });
        await context.CloseAsync();
    }

    [Fact]
    public async Task Data_tab_edits_cells_inline_shows_type_errors_deletes_and_inserts_rows()
    {
        var (page, context, _) = await SignedInProjectAsync();
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, 
            "create table products (id serial primary key, name text not null, qty int, price numeric(10,2), in_stock boolean default true, meta jsonb, added timestamptz default now());\n" +
            "insert into products (name, qty, price, meta) select 'product ' || g, g, g * 1.5, jsonb_build_object('n', g) from generate_series(1, 60) g");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-1")).ToContainTextAsync("INSERT · 60 rows");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–50 of 60");

        ILocator Cell(int row, string column) => page.Locator($"#data-grid tbody tr:nth-child({row}) td[data-column={column}]");
        async Task Edit(int row, string column, string value, bool pressEnter = true)
        {
            await Cell(row, column).ClickAsync();
            var input = page.Locator("#cell-editor-input");
            if (await input.EvaluateAsync<string>("e => e.tagName") == "SELECT") await input.SelectOptionAsync(value);
            else await input.FillAsync(value);
            if (pressEnter) await input.PressAsync("Enter"); else await page.ClickAsync("#cell-save");
        }

        await Edit(1, "name", "renamed product");
        await Assertions.Expect(Cell(1, "name")).ToHaveTextAsync("renamed product");
        await Edit(1, "qty", "12");
        await Assertions.Expect(Cell(1, "qty")).ToHaveTextAsync("12");
        await Edit(1, "price", "not a price");
        await Assertions.Expect(page.Locator("#cell-error")).ToContainTextAsync("invalid input syntax for type numeric");
        await page.Locator("#cell-editor-input").PressAsync("Escape");
        await Assertions.Expect(Cell(1, "price")).ToHaveTextAsync("1.50"); // nothing changed
        await Edit(1, "in_stock", "false", pressEnter: false);
        await Assertions.Expect(Cell(1, "in_stock")).ToHaveTextAsync("false");
        await Edit(1, "meta", "{bad json", pressEnter: false);
        await Assertions.Expect(page.Locator("#cell-error")).ToContainTextAsync("Not valid JSON");
        await page.Locator("#cell-editor-input").FillAsync("{\"n\": 1, \"tag\": \"sale\"}");
        await page.ClickAsync("#cell-save");
        await Assertions.Expect(Cell(1, "meta")).ToContainTextAsync("sale");
        await Edit(1, "added", "2025-01-31T14:00");
        await Assertions.Expect(Cell(1, "added")).ToHaveTextAsync("2025-01-31T14:00:00+00:00");
        await Cell(2, "qty").ClickAsync();
        await page.ClickAsync("#cell-null");
        await Assertions.Expect(Cell(2, "qty").Locator(".null-value")).ToHaveTextAsync("NULL");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-tab-editing.png") });

        // The values, read back with SQL.
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "select name, qty, price, in_stock::text as in_stock, meta->>'tag' as tag, added, (select qty from products where id = 2) as qty2 from products where id = 1");
        await page.ClickAsync("#sql-run");
        var result = page.Locator("#sql-result-0");
        foreach (var expected in new[] { "renamed product", "12", "1.50", "false", "sale", "2025-01-31 14:00:00+00", "NULL" })
            await Assertions.Expect(result).ToContainTextAsync(expected);

        // Delete a row (with confirmation), then insert one with defaults left to PostgreSQL.
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await page.Locator("#data-grid tbody tr:nth-child(3) .row-select").CheckAsync();
        await page.ClickAsync("#data-delete");
        await page.ClickAsync("#data-delete-confirm");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–50 of 59");
        await page.ClickAsync("#data-insert");
        await page.FillAsync("#form-name", "inserted product");
        await page.FillAsync("#form-qty", "many");
        await page.ClickAsync("#form-save");
        await Assertions.Expect(page.Locator("#form-error")).ToContainTextAsync("22P02");
        await page.FillAsync("#form-qty", "5");
        await page.ClickAsync("#form-save");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–50 of 60");
        await context.CloseAsync();
    }

    [Fact]
    public async Task Data_tab_updates_live_from_another_page_and_keeps_the_cell_being_edited()
    {
        var (page, context, projectId) = await SignedInProjectAsync();
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "create table notes (id serial primary key, title text, body text);\n" +
                                "insert into notes (title, body) select 'note ' || g, 'body ' || g from generate_series(1, 3) g");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-1")).ToContainTextAsync("INSERT · 3 rows");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3");

        // A second page (same account) on the same table.
        var other = await context.NewPageAsync();
        other.SetDefaultTimeout(30_000);
        await other.GotoAsync(page.Url);
        await OpenPanelAsync(other);
        await other.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await Assertions.Expect(other.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3");
        ILocator Cell(IPage p, int row, string column) => p.Locator($"#data-grid tbody tr:nth-child({row}) td[data-column={column}]");
        var live = new LocatorAssertionsToHaveTextOptions { Timeout = 1000 }; // "within a second"

        // A cell changed on the first page appears on the second.
        await Cell(page, 1, "title").ClickAsync();
        await page.Locator("#cell-editor-input").FillAsync("changed on page one");
        await page.Locator("#cell-editor-input").PressAsync("Enter");
        await Assertions.Expect(Cell(page, 1, "title")).ToHaveTextAsync("changed on page one");
        await Assertions.Expect(Cell(other, 1, "title")).ToHaveTextAsync("changed on page one", live);

        // The second page is editing row 2's body while the first changes row 2's title: the title updates, the
        // half-typed body stays in its editor.
        await Cell(other, 2, "body").ClickAsync();
        await other.Locator("#cell-editor-input").FillAsync("half-typed");
        await Cell(page, 2, "title").ClickAsync();
        await page.Locator("#cell-editor-input").FillAsync("title from page one");
        await page.Locator("#cell-editor-input").PressAsync("Enter");
        await Assertions.Expect(Cell(other, 2, "title")).ToHaveTextAsync("title from page one", live);
        await Assertions.Expect(other.Locator("#cell-editor-input")).ToHaveValueAsync("half-typed");
        await other.Locator("#cell-editor-input").PressAsync("Enter");
        await Assertions.Expect(Cell(other, 2, "body")).ToHaveTextAsync("half-typed");
        await Assertions.Expect(Cell(page, 2, "body")).ToHaveTextAsync("half-typed", live);

        // Inserts and deletes from elsewhere (the REST API) show too.
        var apiKey = await ApiKeyAsync(page);
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        (await http.PostAsync($"/db/{projectId}/rest/notes", new StringContent("{\"title\":\"from REST\"}", System.Text.Encoding.UTF8, "application/json")))
            .EnsureSuccessStatusCode();
        await Assertions.Expect(Cell(other, 4, "title")).ToHaveTextAsync("from REST", live);
        await Assertions.Expect(other.Locator("#data-range")).ToHaveTextAsync("Rows 1–4 of 4");
        await Assertions.Expect(other.Locator("#data-live")).ToBeVisibleAsync();
        (await http.DeleteAsync($"/db/{projectId}/rest/notes?id=eq.3")).EnsureSuccessStatusCode();
        await Assertions.Expect(other.Locator("#data-grid tbody tr")).ToHaveCountAsync(3, new() { Timeout = 1000 });
        await Assertions.Expect(other.Locator("#data-grid tbody")).Not.ToContainTextAsync("note 3");
        await Assertions.Expect(other.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3");
        await other.ScreenshotAsync(new() { Path = Path.Combine(Shots, "data-tab-live.png") });
        await context.CloseAsync();
    }

    [Fact]
    public async Task Keys_rotate_from_the_panel_and_the_old_one_stops_working()
    {
        var (page, context, projectId) = await SignedInProjectAsync();
        var oldAnon = (await page.Locator("#cred-anon").InnerTextAsync()).Trim();
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        async Task<System.Net.HttpStatusCode> Probe(string key)
        {
            var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{projectId}/rest/");
            req.Headers.Add("apikey", key);
            return (await http.SendAsync(req)).StatusCode;
        }
        Assert.Equal(System.Net.HttpStatusCode.OK, await Probe(oldAnon));

        await page.ClickAsync("#cred-anon-renew");
        await Assertions.Expect(page.Locator("#cred-confirm")).ToContainTextAsync("stop working");
        await page.ClickAsync("#cred-confirm-no"); // cancel changes nothing
        await Assertions.Expect(page.Locator("#cred-anon")).ToHaveTextAsync(oldAnon);
        await page.ClickAsync("#cred-anon-renew");
        await page.ClickAsync("#cred-confirm-yes");
        await Assertions.Expect(page.Locator("#cred-anon")).Not.ToHaveTextAsync(oldAnon);
        var newAnon = (await page.Locator("#cred-anon").InnerTextAsync()).Trim();
        Assert.StartsWith("anon_", newAnon);
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, await Probe(oldAnon));
        Assert.Equal(System.Net.HttpStatusCode.OK, await Probe(newAnon));

        // The owner password: a new Connection URL.
        await page.ClickAsync("#cred-conn-reveal");
        var oldUrl = (await page.Locator("#cred-conn").InnerTextAsync()).Trim();
        await page.ClickAsync("#cred-conn-renew");
        await page.ClickAsync("#cred-confirm-yes");
        await Assertions.Expect(page.Locator("#cred-conn")).Not.ToHaveTextAsync(oldUrl);
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "credentials-rotated.png") });
        await context.CloseAsync();
    }

    [Fact]
    public async Task While_the_database_is_away_the_panel_says_it_is_reconnecting_and_comes_back_by_itself()
    {
        // A cluster of this test's own: it is stopped half-way.
        await using var own = await OwnCluster.StartAsync("reconnect");
        await using var factory = new AppFactory(own.PlatformConnectionString);
        var (page, context, _) = await SignedInProjectAsync(factory.StartOnLoopback());
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "create table alpha (id int primary key); create table beta (id int primary key, v text);\n" +
                                "insert into beta values (1, 'still here')");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-2")).ToContainTextAsync("INSERT");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-range")).ToContainTextAsync("No rows"); // alpha, empty

        // PostgreSQL goes away; the next thing the panel needs from it is the other table's rows.
        await own.Cluster.StopAsync();
        await page.Locator("#table-list").GetByText("beta").ClickAsync();
        await Assertions.Expect(page.Locator("#db-reconnecting")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#blazor-error-ui")).ToBeHiddenAsync(); // no error page
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "panel-reconnecting.png") });

        // It comes back on the same port; the panel recovers by itself and shows the table.
        await own.StartAgainAsync();
        await Assertions.Expect(page.Locator("#db-reconnecting")).ToBeHiddenAsync(new() { Timeout = 15_000 });
        await Assertions.Expect(page.Locator("#data-grid")).ToContainTextAsync("still here");
        await context.CloseAsync();
    }

    /// <summary>
    /// The trap (issue 11): a project plants code in every hook a table owner has — a policy function under FORCE ROW
    /// LEVEL SECURITY, a trigger, a column default, a check constraint and a view — each recording session_user. Then every
    /// platform feature runs over it: the project page and every tab in Chromium, REST with every credential and verb,
    /// streams, access save, key rotation, password reset and deletion. No recorded session is the platform's.
    /// </summary>
    [Fact]
    public async Task Code_planted_in_every_hook_never_runs_in_a_platform_session()
    {
        var (page, context, id) = await SignedInProjectAsync();
        var schema = $"proj_{id}";
        var baseUrl = app.BaseUrl.ToString().TrimEnd('/');
        var apiKey = await ApiKeyAsync(page);
        var anonKey = (await page.Locator("#cred-anon").InnerTextAsync()).Trim();
        async Task<JsonElement> Api(string method, string path, object? body = null)
        {
            var options = new APIRequestContextOptions { Method = method, FailOnStatusCode = true };
            if (body is not null) options.DataObject = body;
            var res = await page.APIRequest.FetchAsync($"{baseUrl}{path}", options);
            var text = await res.TextAsync();
            return text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
        }

        // The traps, planted through the SQL tab.
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, $$"""
            create table trap_log (hook text, session_user_name text, current_user_name text);
            create function record(hook text, cu text) returns boolean language plpgsql security definer set search_path = {{schema}} as $$
            begin
              if session_user::text not like '{{schema}}\_%' then -- a tripwire where nothing can be written (a read-only read)
                raise exception 'TRAP: % ran in a session of %', hook, session_user;
              end if;
              insert into trap_log values (hook, session_user, cu);
              return true;
            exception when read_only_sql_transaction then return true;
            end $$;
            create function record_text(hook text) returns text language plpgsql as $$
            begin perform {{schema}}.record(hook, current_user::text); return 'd'; end $$;
            create function trap_trigger() returns trigger language plpgsql as $$
            begin perform {{schema}}.record('trigger', current_user::text); return coalesce(new, old); end $$;
            create table bait (id serial primary key, title text, user_id uuid, d text default {{schema}}.record_text('default'),
              constraint trapped check ({{schema}}.record('check', current_user::text)));
            create trigger trap before insert or update or delete on bait for each row execute function trap_trigger();
            alter table bait enable row level security;
            alter table bait force row level security;
            create policy trap_policy on bait using ({{schema}}.record('policy', current_user::text))
              with check ({{schema}}.record('policy_check', current_user::text));
            create view bait_view as select * from bait where {{schema}}.record('view', current_user::text);
            insert into bait (title) values ('seed')
            """);
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-10")).ToContainTextAsync("INSERT");
        // Functions run for anon and end users only once the owner allows them (the secure default): these traps must run
        // for every caller, so allow them.
        foreach (var fn in new[] { "record", "record_text" })
            await Api("PUT", $"/api/projects/{id}/functions/{fn}/access", new { anon_execute = true, auth_execute = true });

        // Every tab of the panel over the trapped table, and the project page's overview (row counts).
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await page.Locator("#table-list").GetByText("bait", new() { Exact = true }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-grid tbody tr")).ToHaveCountAsync(1);
        await page.GetByRole(AriaRole.Tab, new() { Name = "Schema" }).ClickAsync();
        await Assertions.Expect(page.Locator("#schema-columns")).ToContainTextAsync("user_id");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Access" }).ClickAsync();
        await Input(page, "access-anon-select").CheckAsync();
        await page.ClickAsync("#access-save");
        await Assertions.Expect(page.Locator("#access-sql")).ToContainTextAsync("dbstudio_anon_select");
        await page.ReloadAsync();
        await Assertions.Expect(page.Locator("#project-charts")).ToContainTextAsync("bait: 1");

        // REST with every credential and verb, and streams for each kind of caller.
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        async Task<HttpResponseMessage> Rest(HttpMethod method, string path, string? bearer, string? key, object? body = null)
        {
            var req = new HttpRequestMessage(method, $"/db/{id}/rest/{path}");
            if (bearer is not null) req.Headers.Authorization = new("Bearer", bearer);
            if (key is not null) req.Headers.Add("apikey", key);
            if (body is not null) req.Content = JsonContent.Create(body);
            return await http.SendAsync(req);
        }
        var signup = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, $"/db/{id}/auth/signup")
        {
            Headers = { { "apikey", anonKey } },
            Content = JsonContent.Create(new { email = $"trap{Guid.NewGuid():N}@example.com", password = "a user password" }),
        });
        var user = (await signup.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString();
        await using var anonStream = await SseClient.OpenAsync(app.BaseUrl, $"/db/{id}/rest/bait/stream?apikey={anonKey}");
        await using var userStream = await SseClient.OpenAsync(app.BaseUrl, $"/db/{id}/rest/bait/stream?apikey={anonKey}", user);
        await using var adminStream = await SseClient.OpenAsync(app.BaseUrl, $"/db/{id}/rest/bait/stream", apiKey);
        foreach (var (bearer, key) in new (string?, string?)[] { (null, anonKey), (user, anonKey), (apiKey, null) })
        {
            await Rest(HttpMethod.Get, "bait", bearer, key);
            await Rest(HttpMethod.Head, "bait", bearer, key);
            await Rest(HttpMethod.Post, "bait", bearer, key, new { title = "written" });
            await Rest(HttpMethod.Patch, "bait?title=eq.written", bearer, key, new { title = "rewritten" });
            await Rest(HttpMethod.Delete, "bait?title=eq.rewritten", bearer, key);
            await Rest(HttpMethod.Get, "bait_view", bearer, key);
            await Rest(HttpMethod.Get, "", bearer, key);
        }
        Assert.Equal(System.Net.HttpStatusCode.Created, (await Rest(HttpMethod.Post, "bait", apiKey, null, new { title = "streamed" })).StatusCode);
        foreach (var s in new[] { anonStream, userStream, adminStream })
            while ((await s.NextAsync()).RecordText("title") != "streamed") { }

        // Key rotation and password reset through the management API (the browser's sign-in).
        await Api("POST", $"/api/projects/{id}/keys/anon/rotate");
        await Api("POST", $"/api/projects/{id}/owner/reset-password");
        await Api("PUT", $"/api/projects/{id}/tables/bait/access", new
        {
            anon_select = false, anon_insert = false, auth_insert = true, auth_select_own = true, auth_update_own = true,
            auth_delete_own = true, user_id_col = "user_id",
        });

        var log = await Api("POST", $"/api/projects/{id}/sql",
            new { sql = "select hook, session_user_name, count(*) from trap_log group by 1, 2 order by 1, 2" });
        var rows = log.GetProperty("results")[0].GetProperty("rows").EnumerateArray()
            .Select(r => (Hook: r[0].GetString()!, Session: r[1].GetString()!)).ToList();
        // Every hook went off where it could write (reads run read-only: there the tripwire would have failed the read,
        // the page or the stream), and never in a session of the platform's login.
        Assert.Superset(new HashSet<string> { "policy", "policy_check", "trigger", "default", "check" }, rows.Select(r => r.Hook).ToHashSet());
        Assert.All(rows, r => Assert.StartsWith($"proj_{id}_", r.Session));
        Assert.DoesNotContain(rows, r => r.Session == DbStudio.Tests.Infrastructure.PostgresServer.PlatformRole);

        await Api("DELETE", $"/api/projects/{id}");
        await context.CloseAsync();
    }

    [Fact]
    public async Task Access_tab_lists_functions_warns_on_security_definer_and_allows_one_for_anon()
    {
        var (page, context, projectId) = await SignedInProjectAsync();
        var anonKey = (await page.Locator("#cred-anon").InnerTextAsync()).Trim();
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, """
            create table visits (id serial primary key, at timestamptz default now());
            create function hello(name text default 'you') returns text language sql immutable as $$ select 'hello ' || name $$;
            create function add_visit() returns bigint language plpgsql security definer as $$
              begin insert into visits default values; return (select count(*) from visits); end $$
            """);
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-2")).ToContainTextAsync("CREATE FUNCTION");

        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        async Task<System.Net.HttpStatusCode> AnonCall(string fn)
        {
            var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{projectId}/rest/rpc/{fn}") { Content = JsonContent.Create(new { }) };
            req.Headers.Add("apikey", anonKey);
            return (await http.SendAsync(req)).StatusCode;
        }
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, await AnonCall("hello"));

        await page.GetByRole(AriaRole.Tab, new() { Name = "Access" }).ClickAsync();
        var definer = page.Locator("#functions tr[data-function=add_visit]");
        await Assertions.Expect(definer).ToContainTextAsync("SECURITY DEFINER");
        var count = page.Locator("#functions tr[data-function=hello]");
        await Assertions.Expect(count).ToContainTextAsync("hello(name text)");
        await Assertions.Expect(count.Locator(".mud-alert")).ToHaveCountAsync(0);
        var index = (await count.GetAttributeAsync("id"))!.Split('-')[1];
        await Input(page, $"function-anon-{index}").CheckAsync();
        await Assertions.Expect(count).ToContainTextAsync("Allowed");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "access-functions.png") });
        Assert.Equal(System.Net.HttpStatusCode.OK, await AnonCall("hello"));
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, await AnonCall("add_visit")); // the definer stays closed
        await context.CloseAsync();
    }

    [Fact]
    public async Task The_panel_works_the_same_for_a_project_on_a_second_server()
    {
        // The platform database on a server of its own that takes no projects; projects go to a second one (issue 17).
        var clusters = await Task.WhenAll(OwnCluster.StartAsync("panel-a"), OwnCluster.StartAsync("panel-b"));
        await using var a = clusters[0];
        await using var b = clusters[1];
        await using var factory = new AppFactory(a.PlatformConnectionString, new Dictionary<string, string?>
        {
            ["DbStudio:Servers:Pool:main:AcceptsNewProjects"] = "false",
            ["DbStudio:Servers:Pool:b:ConnectionString"] = b.PlatformConnectionString,
        });
        var url = factory.StartOnLoopback();
        var (page, context, projectId) = await SignedInProjectAsync(url);

        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await SetSqlAsync(page, "create table notes (id serial primary key, title text);\n" +
                                "insert into notes (title) select 'note ' || g from generate_series(1, 3) g");
        await page.ClickAsync("#sql-run");
        await Assertions.Expect(page.Locator("#sql-result-1")).ToContainTextAsync("INSERT · 3 rows");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–3 of 3");

        // A REST write shows live: the stream reads the second server's change log, woken by its listener.
        using var http = new HttpClient { BaseAddress = url };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", await ApiKeyAsync(page));
        (await http.PostAsync($"/db/{projectId}/rest/notes", new StringContent("{\"title\":\"from REST\"}", System.Text.Encoding.UTF8, "application/json")))
            .EnsureSuccessStatusCode();
        await Assertions.Expect(page.Locator("#data-grid tbody tr:nth-child(4) td[data-column=title]")).ToHaveTextAsync("from REST");
        await Assertions.Expect(page.Locator("#data-range")).ToHaveTextAsync("Rows 1–4 of 4");

        // The Connection URL names the second server, where the schema is (and not on the first).
        await page.ClickAsync("#cred-conn-reveal");
        await Assertions.Expect(page.Locator("#cred-conn")).ToContainTextAsync($"@127.0.0.1:{b.Cluster.Port}/dbstudio");
        async Task<bool> HasSchema(OwnCluster c)
        {
            await using var conn = new Npgsql.NpgsqlConnection(c.Cluster.SuperuserConnectionString("dbstudio"));
            await conn.OpenAsync();
            await using var cmd = new Npgsql.NpgsqlCommand($"SELECT to_regnamespace('proj_{projectId}') IS NOT NULL", conn);
            return await cmd.ExecuteScalarAsync() is true;
        }
        Assert.True(await HasSchema(b));
        Assert.False(await HasSchema(a));
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "second-server.png") });
        await context.CloseAsync();
    }

    private static async Task<string> ApiKeyAsync(IPage page)
    {
        await page.ClickAsync("#cred-api-reveal");
        await Assertions.Expect(page.Locator("#cred-api")).ToContainTextAsync("dak_");
        return (await page.Locator("#cred-api").InnerTextAsync()).Trim();
    }

    /// <summary>A new account with a new project, its page open and the DB panel showing.</summary>
    private async Task<(IPage Page, IBrowserContext Context, string ProjectId)> SignedInProjectAsync(Uri? appUrl = null)
    {
        var context = await _browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new() { Width = 1400, Height = 900 } });
        var page = await context.NewPageAsync();
        _lastPage = page;
        page.SetDefaultTimeout(30_000);
        var baseUrl = (appUrl ?? app.BaseUrl).ToString().TrimEnd('/');
        var email = $"ui{Guid.NewGuid():N}@example.com";
        await page.GotoAsync($"{baseUrl}/account/register");
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", "browser password");
        await page.ClickAsync("button[type=submit]");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("/account/login"));
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", "browser password");
        await page.ClickAsync("button[type=submit]");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("/projects$"));
        await UntilAsync(async () =>
        {
            await Input(page, "new-project-name").FillAsync("Panel work");
            await page.ClickAsync("#create-project");
            await Assertions.Expect(page).ToHaveURLAsync(new Regex("/projects/[a-z0-9]+$"), new() { Timeout = 3000 });
        });
        await OpenPanelAsync(page);
        return (page, context, page.Url[(page.Url.LastIndexOf('/') + 1)..]);
    }

    [Fact]
    public async Task Pages_need_a_sign_in_and_a_wrong_password_is_told()
    {
        var page = await _browser.NewPageAsync();
        var baseUrl = app.BaseUrl.ToString().TrimEnd('/');
        await page.GotoAsync($"{baseUrl}/projects");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("/account/login"));
        await page.FillAsync("#email", "nobody@example.com");
        await page.FillAsync("#password", "wrong password");
        await page.ClickAsync("button[type=submit]");
        await Assertions.Expect(page.Locator("#account-error")).ToContainTextAsync("Wrong email or password");
    }

    /// <summary>Puts text into the SQL tab's Monaco editor (typing would trigger its auto-closing brackets).</summary>
    private static async Task SetSqlAsync(IPage page, string sql)
    {
        await Assertions.Expect(page.Locator("#sql-input .monaco-editor[role=code]")).ToBeVisibleAsync();
        await page.Locator("#sql-input .sql-monaco").EvaluateAsync("(host, text) => host.dbstudioEditor.setValue(text)", sql);
    }

    /// <summary>Chooses a file in a Blazor InputFile once Blazor has wired it: a file set before its change listener is
    /// attached (after the first render, through JS interop) is lost, which a slow machine shows.</summary>
    private static async Task ChooseFileAsync(IPage page, string id, FilePayload file)
    {
        await page.WaitForFunctionAsync("id => document.getElementById(id)?._blazorInputFileNextFileId !== undefined", id);
        await page.SetInputFilesAsync($"#{id}", file);
    }

    /// <summary>Opens a MudSelect (its input is hidden: click the visible field) and picks an option.</summary>
    private static async Task ChooseAsync(IPage page, string id, string option)
    {
        var select = page.Locator($"#{id}").Locator("xpath=ancestor::div[contains(@class,'mud-select')][1]");
        // Mid-screen first: a list opened near the bottom would fall under the project page's footer.
        await select.EvaluateAsync("e => e.scrollIntoView({ block: 'center' })");
        await select.ClickAsync();
        await page.Locator(".mud-popover-open .mud-list-item:visible", new() { HasText = option }).First.ClickAsync();
        await Assertions.Expect(page.Locator($"#{id}")).ToHaveValueAsync(option);
    }

    /// <summary>MudBlazor puts the id on the input or on its wrapper, depending on the component.</summary>
    private static ILocator Input(IPage page, string id) =>
        page.Locator($"input#{id}, textarea#{id}, #{id} input, #{id} textarea").First;

    /// <summary>The first clicks can land before the Blazor circuit is up: retry the step a few times.</summary>
    private static IPage? _lastPage; // the page a failing step belongs to
    /// <summary>
    /// Opens the DB panel. A click can land before the page is interactive and be lost, so it is retried — but only
    /// while the panel is not showing: the button toggles, and a second click on a panel still opening would close it.
    /// </summary>
    private static Task OpenPanelAsync(IPage page) => UntilAsync(async () =>
    {
        if (!await page.Locator("#db-panel").IsVisibleAsync()) await page.ClickAsync("#db-button");
        await Assertions.Expect(page.Locator("#db-panel")).ToBeVisibleAsync(new() { Timeout = 10_000 });
    });

    private static async Task UntilAsync(Func<Task> step, int attempts = 6)
    {
        for (var i = 1; ; i++)
        {
            try { await step(); return; }
            catch (Exception) when (i < attempts) { await Task.Delay(500); }
            catch (Exception) when (_lastPage is { } page)
            {
                // Leave what the browser showed as a test artifact.
                await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "failure.png") });
                await File.WriteAllTextAsync(Path.Combine(Shots, "failure.html"), await page.ContentAsync());
                throw;
            }
        }
    }
}
