// The assistant in a real browser: Chromium asks for "a table of blog posts that anyone can read"; the fake model
// (a real OpenAI-compatible server) answers with <sql> and <access> blocks; the person sees the SQL, runs it, and finds
// the table in the Data tab and public reading in the Access tab. Screenshot: TestResults/screenshots/assistant-drawer.png.
using System.Text.RegularExpressions;
using DbStudio.Tests.Infrastructure;
using Microsoft.Playwright;

namespace DbStudio.Tests.Browser;

public class AssistantBrowserTests(TestApp app) : IAsyncLifetime
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

    private const string Reply = """
        Here is a table for blog posts, readable by anyone with the ANON key:
        <sql>create table blog_posts (
          id bigserial primary key,
          title text not null,
          body text,
          user_id uuid,
          created_at timestamptz not null default now()
        );
        insert into blog_posts (title, body) values ('Hello world', 'The first post');</sql>
        Then open reading to everyone (signed-in users keep writing their own posts):
        <access table="blog_posts">{"anon_select": true}</access>
        """;

    [Fact]
    public async Task Ask_for_a_public_blog_table_see_the_sql_run_it_and_find_it_in_the_data_and_access_tabs()
    {
        await using var model = await FakeModelServer.StartAsync();
        // Streamed in pieces, the way a model sends tokens.
        model.Enqueue(Regex.Split(Reply, @"(?<=\n)"));
        await using var factory = new AppFactory(app.Db.PlatformConnectionString, new Dictionary<string, string?>
        {
            ["DbStudio:Assistant:Endpoint"] = model.Endpoint,
            ["DbStudio:Assistant:Model"] = "fake-model",
            ["DbStudio:Assistant:ApiKey"] = "sk-browser-test-key",
        });
        var baseUrl = factory.StartOnLoopback().ToString().TrimEnd('/');
        var context = await _browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new() { Width = 1500, Height = 950 } });
        var page = await context.NewPageAsync();
        page.SetDefaultTimeout(20_000);

        var email = $"ai{Guid.NewGuid():N}@example.com";
        await page.GotoAsync($"{baseUrl}/account/register");
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", "browser password");
        await page.ClickAsync("button[type=submit]");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("/account/login"));
        await page.FillAsync("#email", email);
        await page.FillAsync("#password", "browser password");
        await page.ClickAsync("button[type=submit]");
        await Assertions.Expect(page).ToHaveURLAsync(new Regex("/projects$"));
        await Retry(async () =>
        {
            await Input(page, "new-project-name").FillAsync("Blog");
            await page.ClickAsync("#create-project");
            await Assertions.Expect(page).ToHaveURLAsync(new Regex("/projects/[a-z0-9]+$"), new() { Timeout = 3000 });
        });
        await Retry(async () =>
        {
            // Only while the panel is not showing: the button toggles, and a second click would close a panel still opening.
            if (!await page.Locator("#db-panel").IsVisibleAsync()) await page.ClickAsync("#db-button");
            await Assertions.Expect(page.Locator("#db-panel")).ToBeVisibleAsync(new() { Timeout = 10_000 });
        });
        var anonKey = await page.Locator("#cred-anon").InnerTextAsync();

        // Open the drawer and ask.
        await page.ClickAsync("#assistant-toggle");
        await Assertions.Expect(page.Locator("#assistant-empty")).ToBeVisibleAsync();
        await Input(page, "assistant-input").FillAsync("a table of blog posts that anyone can read");
        await page.ClickAsync("#assistant-send");
        var sql = page.Locator("#assistant-block-1-0 .assistant-code");
        await Assertions.Expect(sql).ToContainTextAsync("create table blog_posts");
        await Assertions.Expect(page.Locator("#assistant-block-1-1")).ToContainTextAsync("\"anon_select\": true");
        await Assertions.Expect(page.Locator("#assistant-msg-0")).ToContainTextAsync("a table of blog posts that anyone can read");
        await Assertions.Expect(page.Locator("#table-list")).Not.ToContainTextAsync("blog_posts"); // nothing ran by itself
        await page.Locator("#assistant-drawer").ScreenshotAsync(new() { Path = Path.Combine(Shots, "assistant-drawer.png") });

        // The model got the request, and never the key the browser can see.
        var request = Assert.Single(model.Requests);
        Assert.DoesNotContain(anonKey, request.Body);

        // Run both blocks in order.
        await page.ClickAsync("#assistant-run-all-1");
        await Assertions.Expect(page.Locator("#assistant-block-1-1 .assistant-done")).ToBeVisibleAsync();
        await Assertions.Expect(page.Locator("#assistant-block-1-0 .assistant-result").Last).ToContainTextAsync("INSERT · 1 row");
        await page.Locator("#assistant-drawer").ScreenshotAsync(new() { Path = Path.Combine(Shots, "assistant-drawer-ran.png") });

        // The new table is listed and selected; the Data tab shows its row, the Access tab its public reading.
        await Assertions.Expect(page.Locator("#table-list")).ToContainTextAsync("blog_posts");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Data" }).ClickAsync();
        await Assertions.Expect(page.Locator("#data-grid")).ToContainTextAsync("Hello world");
        await page.GetByRole(AriaRole.Tab, new() { Name = "Access" }).ClickAsync();
        await Assertions.Expect(Input(page, "access-anon-select")).ToBeCheckedAsync();
        await Assertions.Expect(page.Locator("#access-sql")).ToContainTextAsync("dbstudio_anon_select");
        await page.ScreenshotAsync(new() { Path = Path.Combine(Shots, "assistant-access.png") });

        // The SQL tab's history has what the assistant ran.
        await page.GetByRole(AriaRole.Tab, new() { Name = "SQL" }).ClickAsync();
        await page.ClickAsync("#sql-history-toggle");
        await Assertions.Expect(page.Locator("#sql-history")).ToContainTextAsync("create table blog_posts");
        await Assertions.Expect(page.Locator("#sql-history-0")).ToContainTextAsync("assistant");
        await context.CloseAsync();
    }

    /// <summary>MudBlazor puts the id on the input or on its wrapper, depending on the component.</summary>
    private static ILocator Input(IPage page, string id) =>
        page.Locator($"input#{id}, textarea#{id}, #{id} input, #{id} textarea").First;

    /// <summary>The first clicks can land before the Blazor circuit is up: the step is tried again (each try waits on a condition).</summary>
    private static async Task Retry(Func<Task> step, int attempts = 6)
    {
        for (var i = 1; ; i++)
        {
            try { await step(); return; }
            catch (PlaywrightException) when (i < attempts) { }
        }
    }
}
