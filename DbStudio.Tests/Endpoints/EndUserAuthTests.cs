// End-user auth (DESIGN §3) through HTTP, and the shape of the generated RLS policies on a real PostgreSQL.
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Npgsql;

namespace DbStudio.Tests.Endpoints;

public class EndUserAuthTests(TestApp app)
{
    private async Task<(ProjectInfo P, HttpClient Owner)> ProjectAsync()
    {
        var owner = await app.NewUserClientAsync();
        return (await TestApp.CreateProjectAsync(owner, "auth"), owner);
    }

    private async Task<HttpResponseMessage> Auth(ProjectInfo p, string path, object? body, string? apikey = "anon", string? bearer = null)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/auth/{path}") { Content = body is null ? null : JsonContent.Create(body) };
        if (apikey == "anon") req.Headers.Add("apikey", p.AnonKey);
        else if (apikey is not null) req.Headers.Add("apikey", apikey);
        if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        return await app.Factory.CreateClient().SendAsync(req);
    }

    private static async Task<JsonElement> Json(HttpResponseMessage r) => await r.Content.ReadFromJsonAsync<JsonElement>();

    [Fact]
    public async Task Signup_returns_a_session_of_the_documented_shape()
    {
        var (p, _) = await ProjectAsync();
        var res = await Auth(p, "signup", new { email = "Ann@Example.com", password = "ann password" });
        Assert.Equal(HttpStatusCode.Created, res.StatusCode);
        var s = await Json(res);
        Assert.Equal("bearer", s.GetProperty("token_type").GetString());
        Assert.Equal(3600, s.GetProperty("expires_in").GetInt32());
        Assert.False(string.IsNullOrEmpty(s.GetProperty("access_token").GetString()));
        Assert.False(string.IsNullOrEmpty(s.GetProperty("refresh_token").GetString()));
        var user = s.GetProperty("user");
        Assert.True(Guid.TryParse(user.GetProperty("id").GetString(), out _));
        Assert.Equal("user", user.GetProperty("role").GetString());

        var me = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/auth/user");
        me.Headers.Authorization = new AuthenticationHeaderValue("Bearer", s.GetProperty("access_token").GetString());
        var meRes = await app.Factory.CreateClient().SendAsync(me);
        Assert.Equal(HttpStatusCode.OK, meRes.StatusCode);
        var info = await Json(meRes);
        Assert.Equal(user.GetProperty("id").GetString(), info.GetProperty("id").GetString());
        Assert.Equal("Ann@Example.com", info.GetProperty("email").GetString());
        Assert.Equal("user", info.GetProperty("role").GetString());
    }

    [Fact]
    public async Task Bad_signups_are_refused_and_the_anon_key_is_required()
    {
        var (p, _) = await ProjectAsync();
        Assert.Equal(HttpStatusCode.Unauthorized, (await Auth(p, "signup", new { email = "a@example.com", password = "long enough" }, apikey: null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Auth(p, "signup", new { email = "a@example.com", password = "long enough" }, apikey: "anon_wrong")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await Auth(p, "signup", new { email = "not-an-email", password = "long enough" })).StatusCode);
        Assert.Equal(HttpStatusCode.UnprocessableEntity, (await Auth(p, "signup", new { email = "a@example.com", password = "short" })).StatusCode);
        Assert.Equal(HttpStatusCode.Created, (await Auth(p, "signup", new { email = "a@example.com", password = "long enough" })).StatusCode);
        var dup = await Auth(p, "signup", new { email = "A@EXAMPLE.COM", password = "long enough" });
        Assert.Equal(HttpStatusCode.UnprocessableEntity, dup.StatusCode);
        Assert.Equal("user_already_exists", (await Json(dup)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Login_checks_the_password_and_users_are_per_project()
    {
        var (p, owner) = await ProjectAsync();
        var other = await TestApp.CreateProjectAsync(owner, "other");
        await Auth(p, "signup", new { email = "b@example.com", password = "b password" });
        Assert.Equal(HttpStatusCode.OK, (await Auth(p, "login", new { email = "b@example.com", password = "b password" })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Auth(p, "login", new { email = "b@example.com", password = "wrong password" })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Auth(p, "login", new { email = "nobody@example.com", password = "b password" })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Auth(other, "login", new { email = "b@example.com", password = "b password" })).StatusCode);
        // A session of one project is not a credential for another.
        var s = await Json(await Auth(p, "login", new { email = "b@example.com", password = "b password" }));
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{other.Id}/rest/anything");
        req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", s.GetProperty("access_token").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, (await app.Factory.CreateClient().SendAsync(req)).StatusCode);
    }

    [Fact]
    public async Task A_reused_refresh_token_ends_the_whole_login()
    {
        var (p, _) = await ProjectAsync();
        var first = await Json(await Auth(p, "signup", new { email = "c@example.com", password = "c password" }));
        var second = await Json(await Auth(p, "refresh", new { refresh_token = first.GetProperty("refresh_token").GetString() }));
        var third = await Json(await Auth(p, "refresh", new { refresh_token = second.GetProperty("refresh_token").GetString() }));
        // The first refresh token is spent; using it again is a sign of theft: every session of that login ends.
        Assert.Equal(HttpStatusCode.Unauthorized, (await Auth(p, "refresh", new { refresh_token = first.GetProperty("refresh_token").GetString() })).StatusCode);
        var me = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/auth/user");
        me.Headers.Authorization = new AuthenticationHeaderValue("Bearer", third.GetProperty("access_token").GetString());
        Assert.Equal(HttpStatusCode.Unauthorized, (await app.Factory.CreateClient().SendAsync(me)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Auth(p, "refresh", new { refresh_token = third.GetProperty("refresh_token").GetString() })).StatusCode);
    }

    [Fact]
    public async Task Only_the_db_api_key_changes_roles()
    {
        var (p, _) = await ProjectAsync();
        var s = await Json(await Auth(p, "signup", new { email = "d@example.com", password = "d password" }));
        var id = s.GetProperty("user").GetProperty("id").GetString();
        async Task<HttpStatusCode> Patch(string? bearer, object body)
        {
            var req = new HttpRequestMessage(HttpMethod.Patch, $"/db/{p.Id}/auth/users/{id}") { Content = JsonContent.Create(body) };
            req.Headers.Add("apikey", p.AnonKey);
            if (bearer is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
            return (await app.Factory.CreateClient().SendAsync(req)).StatusCode;
        }
        Assert.Equal(HttpStatusCode.Forbidden, await Patch(null, new { role = "admin" }));
        Assert.Equal(HttpStatusCode.Forbidden, await Patch(s.GetProperty("access_token").GetString(), new { role = "admin" }));
        Assert.Equal(HttpStatusCode.BadRequest, await Patch(p.ApiKey, new { role = "root" }));
        Assert.Equal(HttpStatusCode.OK, await Patch(p.ApiKey, new { role = "admin" }));
        var me = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/auth/user");
        me.Headers.Authorization = new AuthenticationHeaderValue("Bearer", s.GetProperty("access_token").GetString());
        Assert.Equal("admin", (await Json(await app.Factory.CreateClient().SendAsync(me))).GetProperty("role").GetString());
    }

    [Fact]
    public async Task Password_guessing_is_rate_limited_with_429_and_retry_after()
    {
        var (p, _) = await ProjectAsync();
        await Auth(p, "signup", new { email = "e@example.com", password = "e password" });
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 40 && limited is null; i++)
        {
            var r = await Auth(p, "login", new { email = "e@example.com", password = $"guess {i}" });
            if (r.StatusCode == HttpStatusCode.TooManyRequests) limited = r;
            else Assert.Equal(HttpStatusCode.Unauthorized, r.StatusCode);
        }
        Assert.NotNull(limited);
        Assert.True(int.Parse(limited!.Headers.GetValues("Retry-After").Single()) > 0);
        Assert.Equal("429", (await Json(limited)).GetProperty("code").GetString());
    }

    [Fact]
    public async Task Own_row_policies_evaluate_the_user_id_once_and_can_use_an_index()
    {
        var (p, owner) = await ProjectAsync();
        await TestApp.SqlAsync(owner, p.Id, "create table docs (id serial primary key, user_id uuid, body text); create index on docs (user_id); " +
            "insert into docs (user_id, body) select gen_random_uuid(), 'x' from generate_series(1, 5000); analyze docs");
        // The REST API applies the defaults on first use (the console already did).
        // (As the superuser: the platform's own login is no member of any project role.)
        var super = new NpgsqlConnectionStringBuilder(app.Db.SuperuserConnectionString) { Database = DbStudio.Tests.Infrastructure.PostgresServer.PlatformDatabase };
        await using var conn = new NpgsqlConnection(super.ConnectionString);
        await conn.OpenAsync();
        await using var tx = await conn.BeginTransactionAsync();
        await using (var set = new NpgsqlCommand($"SELECT set_config('role', 'proj_{p.Id}_user', true), set_config('request.user_id', '{Guid.NewGuid()}', true)", conn, tx))
            await set.ExecuteNonQueryAsync();
        await using var explain = new NpgsqlCommand($"EXPLAIN SELECT * FROM proj_{p.Id}.docs", conn, tx);
        var plan = string.Join("\n", await ReadAll(explain));
        Assert.Contains("InitPlan", plan);     // current_setting read once per statement
        Assert.Contains("docs_user_id_idx", plan); // typed compare: the index on user_id is used
    }

    private static async Task<List<string>> ReadAll(NpgsqlCommand cmd)
    {
        var lines = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) lines.Add(r.GetString(0));
        return lines;
    }
}
