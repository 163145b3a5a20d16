// bUnit: the panel's components rendered with the real Core services on the run's PostgreSQL.
using Bunit;
using DbStudio.Core.Access;
using DbStudio.Core.Console;
using DbStudio.Core.Panel;
using DbStudio.Core.Rest;
using DbStudio.Core.Schema;
using DbStudio.Tests.Infrastructure;
using DbStudio.Web.Components.Panel;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using MudBlazor.Services;
using DbStudio.Core.Catalog;

namespace DbStudio.Tests.Components;

public class PanelComponentTests : BunitContext, IAsyncLifetime
{
    private readonly TestApp _app;
    private IReadOnlyList<Microsoft.Extensions.Hosting.IHostedService> _hosted = [];

    public PanelComponentTests(TestApp app)
    {
        _app = app;
        Services.AddMudServices();
        JSInterop.Mode = JSRuntimeMode.Loose;
        // Core of its own, configured as the app (its settings, its platform database, its Data Protection keys).
        Services.AddCoreHost(app.Service<Microsoft.Extensions.Configuration.IConfiguration>());
        // Requests are counted by the instance that served them: the charts show what the app answered over HTTP.
        Services.AddSingleton(app.Service<RestMetrics>());
    }

    /// <summary>Core's hosted services (the platform listener and its routes, the stream's dispatcher, …) run for the test.</summary>
    public async ValueTask InitializeAsync() => _hosted = await CoreHost.StartAsync(Services);

    protected override async ValueTask DisposeAsyncCore()
    {
        await DisposeComponentsAsync(); // their subscriptions end before the dispatcher stops
        await CoreHost.StopAsync(_hosted);
        await base.DisposeAsyncCore();
    }

    private async Task<(HttpClient Client, Core.Projects.ProjectInfo Project)> ProjectAsync(string? sql = null)
    {
        var client = await _app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(client);
        if (sql is not null) await TestApp.SqlAsync(client, p.Id, sql);
        return (client, p);
    }

    [Fact]
    public async Task Credentials_box_shows_schema_and_keys_and_masks_secrets_until_revealed()
    {
        var (_, p) = await ProjectAsync();
        Render<MudPopoverProvider>();
        var cut = Render<CredentialsBox>(ps => ps.Add(c => c.Project, p));
        Assert.Equal(p.Schema, cut.Find("#cred-schema").TextContent);
        Assert.Equal(p.AnonKey, cut.Find("#cred-anon").TextContent);
        Assert.DoesNotContain("dak_", cut.Find("#cred-api").TextContent);
        var password = new Uri(p.ConnectionUrl).UserInfo.Split(':')[1];
        Assert.DoesNotContain(password, cut.Find("#cred-conn").TextContent);
        cut.Click("#cred-api-reveal");
        cut.WaitForAssertion(() => Assert.Equal(p.ApiKey, cut.Find("#cred-api").TextContent));
        cut.Click("#cred-conn-reveal");
        cut.WaitForAssertion(() => Assert.Equal(p.ConnectionUrl, cut.Find("#cred-conn").TextContent));
        cut.Click("#cred-anon-copy");
        cut.WaitForAssertion(() => Assert.Contains(JSInterop.Invocations, i => i.Identifier == "dbstudio.copy" && (string?)i.Arguments[0] == p.AnonKey));
    }

    [Fact]
    public async Task Credentials_box_gives_the_supabase_url_and_a_createClient_snippet_to_copy()
    {
        var (_, p) = await ProjectAsync();
        Render<MudPopoverProvider>();
        var cut = Render<CredentialsBox>(ps => ps.Add(c => c.Project, p));
        var supabaseUrl = p.RestUrl[..^"/rest".Length] + "/supabase";
        Assert.Equal(supabaseUrl, cut.Find("#cred-supabase").TextContent);
        Assert.Equal($"createClient('{supabaseUrl}', '{p.AnonKey}')", cut.Find("#cred-supabase-snippet").TextContent);
        cut.Click("#cred-supabase-copy");
        cut.WaitForAssertion(() => Assert.Contains(JSInterop.Invocations, i => i.Identifier == "dbstudio.copy" && (string?)i.Arguments[0] == supabaseUrl));
        cut.Click("#cred-supabase-snippet-copy");
        cut.WaitForAssertion(() => Assert.Contains(JSInterop.Invocations, i => i.Identifier == "dbstudio.copy"
            && (string?)i.Arguments[0] == $"import {{ createClient }} from '@supabase/supabase-js'\n\nconst supabase = createClient('{supabaseUrl}', '{p.AnonKey}')\n"));
    }

    [Fact]
    public async Task Sql_tab_shows_one_result_per_statement_with_counts_nulls_and_errors()
    {
        var (_, p) = await ProjectAsync();
        var ran = 0;
        var cut = Render<SqlTab>(ps => ps.Add(c => c.ProjectId, p.Id).Add(c => c.Ran, () => ran++)
            .Add(c => c.Sql, "create table t (id int, label text); insert into t values (1, null), (2, 'two'); select * from t order by id; select nope"));
        cut.Click("#sql-run");
        cut.WaitForAssertion(() => Assert.Equal(4, cut.FindAll("[id^=sql-result-]").Count), TimeSpan.FromSeconds(10));
        Assert.Contains("INSERT · 2 rows", cut.Find("#sql-result-1").TextContent);
        Assert.Contains("SELECT · 2 rows", cut.Find("#sql-result-2").TextContent);
        Assert.Contains("NULL", cut.Find("#sql-result-2 .null-value").TextContent);
        Assert.Contains("42703", cut.Find("#sql-result-3 .sql-error").TextContent);
        Assert.Contains("^", cut.Find("#sql-result-3 pre").TextContent);
        Assert.Equal(1, ran);
    }

    [Fact]
    public async Task Sql_tab_runs_a_select_as_an_end_user_read_only_with_the_policies_that_applied_beside_it()
    {
        var (client, p) = await ProjectAsync();
        var ann = (await _app.Service<DbStudio.Core.Auth.EndUserAuth>().SignupAsync(p.Id, $"ann{Guid.NewGuid():N}@example.com", "a user password")).user;
        await TestApp.SqlAsync(client, p.Id, $"""
            create table notes (id serial primary key, body text, user_id uuid);
            insert into notes (body, user_id) values ('ann''s', '{ann.id}'), ('someone''s', gen_random_uuid()), ('team plan', null);
            create policy team_notes on notes for select to proj_{p.Id}_user using (body like 'team%');
            """);
        IRenderedComponent<SqlTab> RunAs(string sql, string who)
        {
            var cut = Render<SqlTab>(ps => ps.Add(c => c.ProjectId, p.Id).Add(c => c.Sql, sql));
            cut.WaitForElement($"#sql-run-as option[value='{who}']");
            cut.Fire("#sql-run-as", e => e.Change(who));
            cut.WaitForAssertion(() => Assert.Equal(who, cut.Find("#sql-run-as").GetAttribute("value"))); // chosen (end users are read again)
            cut.Click("#sql-run");
            cut.WaitForElement("#sql-result-0", TimeSpan.FromSeconds(30));
            return cut;
        }

        var asAnn = RunAs("select body from notes order by id", ann.id.ToString());
        asAnn.WaitForAssertion(() => Assert.Contains("SELECT · 2 rows", asAnn.Find("#sql-result-0").TextContent), TimeSpan.FromSeconds(30));
        Assert.Equal(["ann's", "team plan"], asAnn.FindAll("#sql-result-0 tbody td").Select(td => td.TextContent.Trim()));
        var why = asAnn.Find("#sql-view-as-policies").TextContent;
        Assert.Contains(ann.email, why);
        Assert.Contains("auth_select_own", why);
        Assert.Contains("body ~~ 'team%'::text", asAnn.Find("#sql-view-as-policies [data-policy=team_notes]").TextContent);

        // A write is PostgreSQL's to refuse: the transaction is read-only.
        var write = RunAs("delete from notes", "admin");
        write.WaitForAssertion(() => Assert.Contains("25006", write.Find("#sql-result-0 .sql-error").TextContent), TimeSpan.FromSeconds(30));
        Assert.Contains("read-only transaction", write.Find("#sql-result-0 .sql-error").TextContent);
        Assert.Contains("every policy bypassed", write.Find("#sql-view-as-policies").TextContent);
        Assert.Equal("3", (await TestApp.SqlAsync(client, p.Id, "select count(*) from notes"))[0].GetProperty("rows")[0][0].ToString());
    }

    [Fact]
    public async Task Sql_tab_marks_cut_values_and_says_what_was_left_out()
    {
        var (_, p) = await ProjectAsync();
        var cut = Render<SqlTab>(ps => ps.Add(c => c.ProjectId, p.Id).Add(c => c.Sql, "select repeat('x', 3000000) as big, 'small' as s"));
        cut.Click("#sql-run");
        cut.WaitForAssertion(() => Assert.Single(cut.FindAll("[id^=sql-result-]")), TimeSpan.FromSeconds(20));
        Assert.Contains("Truncated", cut.Find("#sql-result-0 .sql-truncated").TextContent);
        Assert.Contains("3,000,000 bytes", cut.Find("#sql-result-0 .cut-value").TextContent);
        var cells = cut.FindAll("#sql-result-0 tbody td");
        Assert.True(cells[0].TextContent.Length < 3000); // a long value shows its start only
        Assert.Equal("small", cells[1].TextContent.Trim());
    }

    [Fact]
    public async Task Schema_tab_lists_columns_with_type_nullable_default_and_primary_key()
    {
        var (_, p) = await ProjectAsync("create table items (id serial primary key, name text not null, price numeric(8,2) default 0, tags text[])");
        var cut = Render<SchemaTab>(ps => ps.Add(c => c.ProjectId, p.Id).Add(c => c.Table, "items"));
        cut.WaitForAssertion(() => Assert.Equal(4, cut.FindAll("#schema-columns tbody tr").Count));
        var rows = cut.FindAll("#schema-columns tbody tr").Select(r => r.TextContent).ToList();
        Assert.Contains("integer", rows[0]);
        Assert.Contains("✓", rows[0]);
        Assert.Contains("no", rows[1]);          // name is NOT NULL
        Assert.Contains("numeric(8,2)", rows[2]);
        Assert.Contains("0", rows[2]);           // its default
        Assert.Contains("text[]", rows[3]);      // types beyond the 13 still display
    }

    [Fact]
    public async Task Data_tab_pages_50_rows_with_the_total_and_marks_nulls()
    {
        var (_, p) = await ProjectAsync("create table n (id int primary key, v text); insert into n select g, case when g % 2 = 0 then 'x' end from generate_series(1, 75) g");
        var cut = Render<DataTab>(ps => ps.Add(c => c.ProjectId, p.Id).Add(c => c.Table, "n"));
        cut.WaitForAssertion(() => Assert.Equal("Rows 1–50 of 75", cut.Find("#data-range").TextContent.Trim()), TimeSpan.FromSeconds(10));
        Assert.Equal(50, cut.FindAll("#data-grid tbody tr").Count);
        Assert.NotEmpty(cut.FindAll("#data-grid .null-value"));
        cut.Click("#data-next"); // keyset on the primary key
        cut.WaitForAssertion(() => Assert.Equal("Rows 51–75 of 75", cut.Find("#data-range").TextContent.Trim()), TimeSpan.FromSeconds(10));
        Assert.Equal("51", cut.Find("#data-grid tbody tr td[data-column=id]").TextContent.Trim());
        cut.Click("#data-prev");
        cut.WaitForAssertion(() => Assert.Equal("Rows 1–50 of 75", cut.Find("#data-range").TextContent.Trim()), TimeSpan.FromSeconds(10));
        cut.Fire("#data-page-jump", e => e.Input("2"));
        cut.Fire("#data-page-jump", e => e.KeyDown(new Microsoft.AspNetCore.Components.Web.KeyboardEventArgs { Key = "Enter" }));
        cut.WaitForAssertion(() => Assert.Equal("Rows 51–75 of 75", cut.Find("#data-range").TextContent.Trim()), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Data_tab_opens_a_row_in_the_side_form_with_every_column_json_large_and_null_toggles_and_saves_it()
    {
        var (_, p) = await ProjectAsync("create table f (id int primary key, name text not null, doc jsonb, n int); insert into f values (1, 'one', '{\"a\": 1}', 5)");
        var cut = Render<DataTab>(ps => ps.Add(c => c.ProjectId, p.Id).Add(c => c.Table, "f"));
        cut.WaitForAssertion(() => Assert.Equal("Rows 1–1 of 1", cut.Find("#data-range").TextContent.Trim()), TimeSpan.FromSeconds(10));
        cut.Click(".row-open");
        cut.WaitForAssertion(() => Assert.Equal("Edit row", cut.Find("#data-row-form-title").TextContent), TimeSpan.FromSeconds(10));
        Assert.Equal(["id", "name", "doc", "n"], cut.FindAll("#data-row-form [data-column]").Select(e => e.GetAttribute("data-column")));
        Assert.Equal("TEXTAREA", cut.Find("#form-doc").TagName);
        Assert.Equal("10", cut.Find("#form-doc").GetAttribute("rows"));
        Assert.Empty(cut.FindAll("#form-null-name")); // NOT NULL: no toggle
        cut.Fire("#form-name", e => e.Change("renamed"));
        cut.Fire("#form-null-n", e => e.Change(true));
        cut.Click("#form-save");
        cut.WaitForAssertion(() => Assert.Empty(cut.FindAll("#data-row-form")), TimeSpan.FromSeconds(10));
        Assert.Equal("renamed", cut.Find("#data-grid td[data-column=name]").TextContent.Trim());
        Assert.Equal("NULL", cut.Find("#data-grid td[data-column=n] .null-value").TextContent);
    }

    [Fact]
    public async Task Access_tab_offers_only_uuid_or_text_owner_columns_and_shows_the_policy_sql()
    {
        var (_, p) = await ProjectAsync("create table docs (id serial primary key, user_id uuid, owner_name text, n int)");
        Render<MudPopoverProvider>();
        var cut = Render<AccessTab>(ps => ps.Add(c => c.ProjectId, p.Id).Add(c => c.Table, "docs"));
        cut.WaitForAssertion(() => Assert.Contains("ENABLE ROW LEVEL SECURITY", cut.Find("#access-sql").TextContent));
        Assert.Contains("user_id", cut.Find("#access-sql").TextContent); // the default owner column
        Assert.Contains("::uuid", cut.Find("#access-sql").TextContent);
    }

    [Fact]
    public async Task Access_tab_lists_functions_closed_by_default_warns_on_security_definer_and_switches_grant_execute()
    {
        var (_, p) = await ProjectAsync("""
            create function hello(name text) returns text language sql stable as $$ select 'hi ' || name $$;
            create function hello(name text, n int) returns text language sql stable as $$ select repeat('hi ', n) || name $$;
            create function elevated() returns int language sql security definer as 'select 1'
            """);
        Render<MudPopoverProvider>();
        var cut = Render<AccessTab>(ps => ps.Add(c => c.ProjectId, p.Id));
        cut.WaitForAssertion(() => Assert.Equal(2, cut.FindAll("#functions tbody tr").Count));
        var hello = cut.Find("tr[data-function=hello]");
        Assert.Contains("hello(name text, n integer)", hello.TextContent);
        Assert.Empty(hello.QuerySelectorAll(".mud-alert"));
        Assert.Contains("SECURITY DEFINER", cut.Find("tr[data-function=elevated]").TextContent);
        Assert.All(cut.FindAll("#functions input[type=checkbox]"), box => Assert.False(box.HasAttribute("checked")));

        var index = hello.Id!.Split('-')[1];
        Assert.DoesNotContain("Allowed", hello.TextContent);
        cut.Fire($"#function-auth-{index}", e => e.Change(true));
        cut.WaitForAssertion(() => Assert.Contains("Allowed", cut.Find("tr[data-function=hello]").TextContent), TimeSpan.FromSeconds(10));
        Assert.Equal(new FunctionAccessSettings(false, true), await _app.Service<FunctionAccess>().GetAsync(p.Id, "hello"));
    }

    [Fact]
    public async Task End_users_are_listed_and_their_role_can_be_switched()
    {
        var (_, p) = await ProjectAsync();
        var auth = _app.Service<DbStudio.Core.Auth.EndUserAuth>();
        var session = await auth.SignupAsync(p.Id, "eve@example.com", "eve password");
        Render<MudPopoverProvider>();
        var cut = Render<EndUsersList>(ps => ps.Add(c => c.ProjectId, p.Id));
        cut.WaitForAssertion(() => Assert.Contains("eve@example.com", cut.Find("#end-users").TextContent));
        Assert.Contains("user", cut.Find("#end-users").TextContent);
        cut.Fire($"#end-user-admin-{session.user.id}", e => e.Change(true));
        cut.WaitForAssertion(() => Assert.Contains("admin", cut.Find("#end-users tbody").TextContent));
        Assert.Equal("admin", (await auth.GetUserAsync(p.Id, session.user.id))!.role);
    }

    [Fact]
    public async Task Sql_history_lists_console_and_assistant_runs_and_reruns_them()
    {
        var (_, p) = await ProjectAsync();
        var cut = Render<SqlTab>(ps => ps.Add(c => c.ProjectId, p.Id).Add(c => c.Sql, "select 1 as one"));
        cut.Click("#sql-run");
        cut.WaitForAssertion(() => Assert.Single(cut.FindAll("[id^=sql-result-]")), TimeSpan.FromSeconds(10));
        // The assistant runs a block elsewhere; the open tab's history shows it.
        await Services.GetRequiredService<AssistantSql>().RunAsync(p.Id, "<sql>select 2 as two</sql>");
        cut.Click("#sql-history-toggle"); // the history re-renders live when the assistant's run lands
        cut.WaitForAssertion(() => Assert.Equal(2, cut.FindAll(".history-entry").Count));
        Assert.Contains("assistant", cut.Find("#sql-history-0").TextContent);
        Assert.Contains("select 2 as two", cut.Find("#sql-history-0").TextContent);
        cut.Click("#sql-history-run-1"); // re-run the first one
        cut.WaitForAssertion(() => Assert.Contains("one", cut.Find("#sql-result-0").TextContent), TimeSpan.FromSeconds(10));
        cut.Click("#sql-csv-0");
        cut.WaitForAssertion(() => Assert.Contains(JSInterop.Invocations, i => i.Identifier == "dbstudio.download"));
    }

    [Fact]
    public async Task Project_charts_show_rows_per_table_and_rest_requests_by_auth_level()
    {
        var (_, p) = await ProjectAsync("create table t (id int primary key); insert into t values (1), (2), (3); create table empty (id int)");
        var http = _app.Factory.CreateClient();
        async Task Get(string? apikey, string? bearer)
        {
            var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/t");
            if (apikey is not null) req.Headers.Add("apikey", apikey);
            if (bearer is not null) req.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
            await http.SendAsync(req);
        }
        await Get(p.AnonKey, null);
        await Get(p.AnonKey, null);
        await Get(null, p.ApiKey);
        await Get(null, null);
        var cut = Render<DbStudio.Web.Components.Pages.ProjectCharts>(ps => ps.Add(c => c.ProjectId, p.Id));
        cut.WaitForAssertion(() => Assert.Equal("ANON key: 2 · end users: 0 · DB_API_KEY: 1 · refused: 1", cut.Find("#chart-requests-total").TextContent.Trim()));
        Assert.Contains("empty: 0 · t: 3", cut.Markup);
        Assert.NotEmpty(cut.FindAll("#chart-rows, #chart-rows svg, svg"));
    }

    [Theory]
    [InlineData(16u, "boolean", "select")]
    [InlineData(1082u, "date", "input[type=date]")]
    [InlineData(3802u, "jsonb", "textarea")]
    [InlineData(114u, "json", "textarea")]
    [InlineData(23u, "integer", "input[inputmode=decimal]")]
    [InlineData(1700u, "numeric(10,2)", "input[inputmode=decimal]")]
    [InlineData(25u, "text", "input[inputmode=text]")]
    [InlineData(2950u, "uuid", "input[placeholder^=xxxxxxxx]")]
    [InlineData(1184u, "timestamp with time zone", "input[type=datetime-local]")]
    public void Each_column_type_gets_a_fitting_editor(uint oid, string type, string selector)
    {
        var column = new ColumnInfo("c", type, oid, NotNull: false, Default: null, PrimaryKeyPosition: null, Generated: false);
        var cut = Render<CellEditor>(ps => ps.Add(c => c.Column, column).Add(c => c.Text, ""));
        Assert.Single(cut.FindAll(selector));
        Assert.Single(cut.FindAll("#cell-null")); // nullable: NULL is offered, distinct from empty text
    }

    [Fact]
    public void Json_editors_refuse_invalid_json_before_saving_and_not_null_columns_offer_no_null()
    {
        string? saved = "untouched";
        var column = new ColumnInfo("meta", "jsonb", 3802, NotNull: true, Default: null, PrimaryKeyPosition: null, Generated: false);
        var cut = Render<CellEditor>(ps => ps.Add(c => c.Column, column).Add(c => c.Text, "{\"a\": 1}").Add(c => c.Save, (string? t) => saved = t));
        Assert.Empty(cut.FindAll("#cell-null"));
        cut.Fire("#cell-editor-input", e => e.Input("{broken"));
        cut.Click("#cell-save");
        cut.WaitForAssertion(() => Assert.Contains("Not valid JSON", cut.Find("#cell-error").TextContent));
        Assert.Equal("untouched", saved);
        cut.Fire("#cell-editor-input", e => e.Input("[1, 2]"));
        cut.Click("#cell-save");
        cut.WaitForAssertion(() => Assert.Equal("[1, 2]", saved));
    }

    [Fact]
    public async Task Data_tab_filters_with_one_column_one_operator_and_one_value()
    {
        var (_, p) = await ProjectAsync("create table n (id int primary key, v text); insert into n select g, case when g % 2 = 0 then 'x' || g end from generate_series(1, 75) g");
        var cut = Render<DataTab>(ps => ps.Add(c => c.ProjectId, p.Id).Add(c => c.Table, "n"));
        cut.WaitForAssertion(() => Assert.Equal("Rows 1–50 of 75", cut.Find("#data-range").TextContent.Trim()));
        cut.Fire("#data-filter-column", e => e.Change("v"));
        cut.Fire("#data-filter-op", e => e.Change("is.null"));
        cut.Click("#data-filter-apply");
        cut.WaitForAssertion(() => Assert.Equal("Rows 1–38 of 38", cut.Find("#data-range").TextContent.Trim()));
        cut.Fire("#data-filter-op", e => e.Change("contains"));
        cut.WaitForElement("#data-filter-value");
        cut.Fire("#data-filter-value", e => e.Input("X7")); // the value box returns once the operator takes a value
        cut.Click("#data-filter-apply"); // contains, case-insensitive: x70, x72, x74
        cut.WaitForAssertion(() => Assert.Equal("Rows 1–3 of 3", cut.Find("#data-range").TextContent.Trim()));
        cut.Fire("#data-filter-column", e => e.Change("id"));
        cut.Fire("#data-filter-op", e => e.Change("gt"));
        cut.Fire("#data-filter-value", e => e.Input("not a number"));
        cut.Click("#data-filter-apply"); // PostgreSQL's message, not a crash
        cut.WaitForAssertion(() => Assert.Contains("22P02", cut.Markup));
        cut.Click("#data-filter-clear");
        cut.WaitForAssertion(() => Assert.Equal("Rows 1–50 of 75", cut.Find("#data-range").TextContent.Trim()));
    }
}
