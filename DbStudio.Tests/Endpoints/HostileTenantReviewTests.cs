// Hostile-tenant review (REST/RPC/auth/session state): what one project's owner can do to every other project through
// state PostgreSQL shares across the database, and what the REST API tells a credential that GET with the same
// credential would not.
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using static DbStudio.Tests.Infrastructure.TenantSetups;
using Npgsql;

namespace DbStudio.Tests.Endpoints;

public class HostileTenantReviewTests(TestApp app)
{
    private async Task<string> SignupAsync(ProjectInfo p, string email)
    {
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/auth/signup")
            { Content = JsonContent.Create(new { email, password = "a long password" }) };
        req.Headers.Add("apikey", p.AnonKey);
        var res = await http.SendAsync(req);
        Assert.Equal(HttpStatusCode.Created, res.StatusCode);
        return (await res.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("access_token").GetString()!;
    }

    /// <summary>
    /// DESIGN §2: one project cannot block another. The platform serialises REST-login DDL with
    /// pg_advisory_xact_lock(hashtext('dbstudio-rest-logins')) — a key in the one advisory-lock space every role of the
    /// database shares, and pg_advisory_lock is executable by PUBLIC. A project owner that takes that key over its
    /// Connection URL (or in any function) and keeps the session open stops every other project's REST logins from
    /// being made: another tenant's brand-new project never answers its first REST request.
    /// </summary>
    [Fact]
    public async Task An_owner_holding_the_platforms_advisory_lock_blocks_other_projects_first_REST_request()
    {
        var attacker = await app.NewUserClientAsync();
        var a = await TestApp.CreateProjectAsync(attacker, "lock holder");
        await using var held = new NpgsqlConnection(DbStudio.Tests.Integration.ConnectionSharesTests.FromUrl(a.ConnectionUrl));
        await held.OpenAsync();
        await using (var take = new NpgsqlCommand("SELECT pg_advisory_lock(hashtext('dbstudio-rest-logins'))", held))
            await take.ExecuteNonQueryAsync();
        try
        {
            // Another platform user, another project, the ANON key: a 401 or 200 is fine; no answer within 20 s is not.
            var victim = await app.NewUserClientAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            var first = Task.Run(async () =>
            {
                var b = await TestApp.CreateProjectAsync(victim, "victim");
                NoErrors(await TestApp.SqlAsync(victim, b.Id, "create table t (id int primary key)"));
                using var http = new HttpClient { BaseAddress = app.BaseUrl, Timeout = Timeout.InfiniteTimeSpan };
                var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{b.Id}/rest/t");
                req.Headers.Add("apikey", b.AnonKey);
                return (await http.SendAsync(req, cts.Token)).StatusCode;
            });
            var done = await Task.WhenAny(first, Task.Delay(TimeSpan.FromSeconds(20)));
            Assert.True(done == first && first.IsCompletedSuccessfully,
                "another tenant's first REST request did not answer within 20 s while project " + a.Id + " held the advisory lock");
        }
        finally
        {
            await using var release = new NpgsqlCommand("SELECT pg_advisory_unlock_all()", held);
            await release.ExecuteNonQueryAsync();
        }
        // (Control: the same steps answer at once with nobody holding the key — the test above is the lock and nothing else.)
        // The platform's own locks are tables in a schema no project role may use.
        await using var tx = await held.BeginTransactionAsync();
        var refused = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var lockCmd = new NpgsqlCommand(DbStudio.Core.Platform.PlatformLocks.RestLogins, held, tx);
            await lockCmd.ExecuteNonQueryAsync();
        });
        Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
    }

    /// <summary>
    /// §5/§2: a credential learns nothing about rows its policies hide. With the secure defaults a signed-in end user
    /// reads only their own rows — yet `Prefer: count=planned` (and `estimated`, on big tables) answers pg_class.reltuples
    /// for the whole table, read past row-level security: every other user's rows are counted in Content-Range. GET with
    /// the same token returns one row; PostgREST's planned count is the plan of the caller's own query (RLS applied).
    /// </summary>
    [Fact]
    public async Task A_planned_count_tells_an_end_user_how_many_rows_other_users_own()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "orders");
        NoErrors(await TestApp.SqlAsync(owner, p.Id, """
            create table orders (id serial primary key, item text, user_id uuid);
            insert into orders (item, user_id) select 'someone else''s order ' || g, gen_random_uuid() from generate_series(1, 5000) g;
            analyze orders;
            """));
        var token = await SignupAsync(p, $"u{Guid.NewGuid():N}@example.com");
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        var mine = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/rest/orders") { Content = JsonContent.Create(new { item = "mine" }) };
        mine.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        mine.Headers.Add("apikey", p.AnonKey);
        Assert.Equal(HttpStatusCode.Created, (await http.SendAsync(mine)).StatusCode);

        foreach (var pref in new[] { "count=exact", "count=planned" })
        {
            var get = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/orders?select=id");
            get.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            get.Headers.Add("apikey", p.AnonKey);
            get.Headers.Add("Prefer", pref);
            var res = await http.SendAsync(get);
            var rows = (await res.Content.ReadFromJsonAsync<JsonElement>()).GetArrayLength();
            var range = res.Content.Headers.GetValues("Content-Range").Single();
            Assert.Equal(1, rows); // GET shows the user their one order
            // ... so the total a header gives them may not count the 5,000 rows of other users
            Assert.True(long.Parse(range[(range.IndexOf('/') + 1)..]) < 100, $"{pref}: Content-Range {range} for a caller who may read {rows} row");
        }
    }

    /// <summary>
    /// README (REST): every request's prelude sets its role, claims, READ ONLY and statement timeout transaction-locally,
    /// "so code that lifted it for the session leaves no later request unbounded". The prelude calls `set_config`
    /// unqualified, and the session's search_path and role are project code's to change: code that runs once for an
    /// anonymous caller sets the session search_path to `proj_x, pg_catalog` and the session role to the anon role
    /// (so that the next prelude is parsed by a role with USAGE on the schema) — and a `set_config(text, text, boolean)`
    /// of the project's then shadows PostgreSQL's in every later request's prelude on that pooled connection. The
    /// platform's statement timeout and READ ONLY (and the caller's role and claims) are then whatever the project says.
    /// </summary>
    [Fact]
    public async Task Project_code_shadows_the_preludes_set_config_and_lifts_the_statement_timeout_of_later_requests()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "shadow");
        var schema = ProjectNaming.Schema(p.Id);
        NoErrors(await TestApp.SqlAsync(owner, p.Id, $$"""
            create function set_config(name text, value text, is_local boolean) returns text language sql
              as 'select $2';  -- does nothing
            create function poison() returns text language plpgsql as $f$
            begin
              perform pg_catalog.set_config('statement_timeout', '0', false);
              perform pg_catalog.set_config('role', current_user, false);  -- the session role: name lookup sees the schema
              perform pg_catalog.set_config('search_path', '{{schema}}, pg_catalog', false);
              return 'done';
            end $f$;
            create function limits() returns text language sql stable
              as $f$ select pg_catalog.current_setting('statement_timeout') || ' ' || pg_catalog.current_setting('transaction_read_only') $f$;
            """));
        foreach (var fn in new[] { "poison", "limits", "set_config" })
            (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/functions/{fn}/access", new { anon_execute = true, auth_execute = false }))
                .EnsureSuccessStatusCode();

        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        async Task<string> CallAsync(HttpMethod method, string fn)
        {
            var req = new HttpRequestMessage(method, $"/db/{p.Id}/rest/rpc/{fn}");
            req.Headers.Add("apikey", p.AnonKey);
            if (method == HttpMethod.Post) req.Content = JsonContent.Create(new { });
            var res = await http.SendAsync(req);
            var body = await res.Content.ReadAsStringAsync();
            Assert.True(res.IsSuccessStatusCode, body);
            return body;
        }
        // Before: a read (GET) runs READ ONLY under the platform's 10 s timeout.
        Assert.Equal("\"10s on\"", await CallAsync(HttpMethod.Get, "limits"));
        for (var i = 0; i < 3; i++) await CallAsync(HttpMethod.Post, "poison");
        // After: later requests on the shared login (sequential requests reuse the newest idle connection) must still be.
        for (var i = 0; i < 3; i++)
            Assert.Equal("\"10s on\"", await CallAsync(HttpMethod.Get, "limits"));
    }

    /// <summary>
    /// DESIGN §2 "Limits protect the shared server": an anonymous caller of any project whose tables anon may read (a
    /// team with 1,000 members: 1,001 rows) embeds the same to-many relationship back and forth under several aliases.
    /// Each to-many level is capped at MaxRows (1,000), but the levels multiply, and the answer is made in the app's
    /// memory before a byte is sent: a request of a few hundred bytes made the shared app allocate hundreds of MB (55 MB
    /// of answer, 630 MB allocated, 8 at once per project). Answers are capped (Rest:MaxResponseBytes, 64 MiB): past it
    /// a clear error, and a write asking for such an answer writes nothing.
    /// </summary>
    [Fact]
    public async Task A_small_anonymous_request_that_asks_for_an_unbounded_answer_is_refused_and_writes_nothing()
    {
        var (owner, p, inner) = await app.FanOutAsync("fanout", aliases: 1);
        NoErrors(await TestApp.SqlAsync(owner, p.Id,
            "create function everybody() returns text language sql stable as $$ select repeat('x', 8 * 1024 * 1024) $$"));
        // (The cap lowered to 4 MiB for the test, so that PostgreSQL makes the too large answers quickly on any machine;
        // the default is 64 MiB.)
        using var cap = app.LowResponseCap(4 * 1024 * 1024);
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/functions/everybody/access", new { anon_execute = true, auth_execute = false }))
            .EnsureSuccessStatusCode();
        using var http = new HttpClient { BaseAddress = app.BaseUrl, Timeout = TimeSpan.FromMinutes(2) };
        async Task<(HttpStatusCode Status, JsonElement Body)> SendAsync(HttpMethod method, string path, object? body = null)
        {
            var req = new HttpRequestMessage(method, path);
            req.Headers.Add("apikey", p.AnonKey);
            if (body is not null)
            {
                req.Content = JsonContent.Create(body);
                req.Headers.Add("Prefer", "return=representation");
            }
            using var res = await http.SendAsync(req);
            return (res.StatusCode, await res.Content.ReadFromJsonAsync<JsonElement>());
        }

        var url = $"/db/{p.Id}/rest/teams?select=id,people(id,{inner})";
        Assert.True(url.Length < 100);
        var (status, error) = await SendAsync(HttpMethod.Get, url);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("DBS001", error.GetProperty("code").GetString());
        // A write whose answer would be as large is refused before it commits.
        (status, error) = await SendAsync(HttpMethod.Post, $"/db/{p.Id}/rest/people?select=id,teams(people(id,{inner}))",
            new { id = 1001, team_id = 1 });
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("DBS001", error.GetProperty("code").GetString());
        // An RPC answer too.
        (status, error) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/rpc/everybody");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("DBS001", error.GetProperty("code").GetString());
        // Nothing was written, and a sensible request is answered.
        var (okStatus, teams) = await SendAsync(HttpMethod.Get, $"/db/{p.Id}/rest/teams?select=id,people(id)");
        Assert.Equal(HttpStatusCode.OK, okStatus);
        Assert.Equal(1, teams.GetArrayLength());
        Assert.Equal(1000, teams[0].GetProperty("people").GetArrayLength());
        // (A write with a small answer still writes.)
        (okStatus, _) = await SendAsync(HttpMethod.Post, $"/db/{p.Id}/rest/people?select=id,teams(id)", new { id = 1002, team_id = 1 });
        Assert.Equal(HttpStatusCode.Created, okStatus);
    }
}
