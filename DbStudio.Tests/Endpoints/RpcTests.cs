// RPC (DESIGN §5, issue 15 item 2) through HTTP on the real PostgreSQL: calls as PostgREST answers them, and the secure
// default — a function runs for anon and end users only once the owner allowed it, and a refused call runs nothing
// (proved by the side_effects table the functions write to).
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using DbStudio.Core.Access;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class RpcTests(TestApp app)
{
    private const string Fixture = """
        create table items (id serial primary key, name text, price numeric, user_id uuid);
        insert into items (name, price) values ('apple', 1.5), ('banana', 0.5), ('cherry', 3), ('date', 2);
        create table side_effects (id serial primary key, note text);
        create function add(a int, b int default 10) returns int language sql immutable as 'select a + b';
        create function greet(name text) returns text language sql stable as $$ select 'hello ' || name $$;
        create function greet(name text, punct text) returns text language sql stable as $$ select 'hello ' || name || punct $$;
        create function cheap_items(max_price numeric default 100) returns setof items language sql stable
          as $$ select * from items where price <= max_price $$;
        create function stats() returns table (n bigint, total numeric) language sql stable as $$ select count(*), sum(price) from items $$;
        create function first_item() returns items language sql stable as $$ select * from items order by id limit 1 $$;
        create function numbers(n int) returns setof int language sql immutable as 'select generate_series(1, n)';
        create function log_note(note text) returns int language sql as $$ insert into side_effects (note) values (note); select 1 $$;
        create function forget(note text) returns void language sql as $$ insert into side_effects (note) values (note) $$;
        create function echo(payload jsonb) returns jsonb language sql immutable as 'select payload';
        create function echo_raw(json) returns json language sql immutable as 'select $1';
        create function as_definer(note text) returns bigint language plpgsql security definer as $$
          begin insert into side_effects (note) values (note); return (select count(*) from side_effects); end $$;
        create function either(a int default 1) returns int language sql immutable as 'select a';
        create function either(b text default 'x') returns text language sql immutable as 'select b';
        create function sneaky_write(note text) returns int language plpgsql stable as $$ begin return log_note(note); end $$
        """;

    private sealed record World(HttpClient Owner, ProjectInfo Project, string UserToken);

    private static Task<World>? _world;
    private static readonly Lock Gate = new();

    private Task<World> WorldAsync()
    {
        lock (Gate) return _world ??= SetUpAsync();
    }

    private async Task<World> SetUpAsync()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "rpc");
        Assert.All(await TestApp.SqlAsync(owner, p.Id, Fixture), r => Assert.False(r.TryGetProperty("error", out var e), e.ToString()));
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        var signup = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/auth/signup")
        {
            Content = JsonContent.Create(new { email = $"rpc{Guid.NewGuid():N}@example.com", password = "an end user password" }),
        };
        signup.Headers.Add("apikey", p.AnonKey);
        var session = await (await http.SendAsync(signup)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>();
        return new World(owner, p, session.GetProperty("access_token").GetString()!);
    }

    private enum Who { Anon, User, Dak }

    private async Task<(HttpStatusCode Status, string Body, HttpResponseMessage Response)> CallAsync(World w, Who who, HttpMethod method,
        string pathAndQuery, string? body = null, params (string Name, string Value)[] headers)
    {
        var req = new HttpRequestMessage(method, $"/db/{w.Project.Id}/rest/rpc/{pathAndQuery}");
        req.Headers.Add("apikey", w.Project.AnonKey);
        if (who == Who.User) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", w.UserToken);
        if (who == Who.Dak) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", w.Project.ApiKey);
        foreach (var (n, v) in headers) req.Headers.TryAddWithoutValidation(n, v);
        if (body is not null) req.Content = new StringContent(body, Encoding.UTF8, "application/json");
        var res = await app.Factory.CreateClient().SendAsync(req);
        return (res.StatusCode, await res.Content.ReadAsStringAsync(), res);
    }

    private static async Task<long> NotesAsync(World w, string note) =>
        (await TestApp.SqlAsync(w.Owner, w.Project.Id, $"select count(*) from side_effects where note = '{note}'"))[0]
        .GetProperty("rows")[0][0].GetInt64();

    private async Task AllowAsync(World w, string fn, bool anon, bool auth) =>
        (await w.Owner.PutAsJsonAsync($"/api/projects/{w.Project.Id}/functions/{fn}/access", new { anon_execute = anon, auth_execute = auth }))
        .EnsureSuccessStatusCode();

    [Fact]
    public async Task Post_passes_arguments_by_name_and_omitted_ones_take_their_defaults()
    {
        var w = await WorldAsync();
        var both = await CallAsync(w, Who.Dak, HttpMethod.Post, "add", """{"a":1,"b":2}""");
        Assert.Equal((HttpStatusCode.OK, "3"), (both.Status, both.Body));
        var defaulted = await CallAsync(w, Who.Dak, HttpMethod.Post, "add", """{"a":1}""");
        Assert.Equal((HttpStatusCode.OK, "11"), (defaulted.Status, defaulted.Body));
        Assert.StartsWith("application/json", defaulted.Response.Content.Headers.ContentType!.ToString());
        // Overloads are told apart by the argument names, as PostgREST does.
        Assert.Equal("\"hello ann\"", (await CallAsync(w, Who.Dak, HttpMethod.Post, "greet", """{"name":"ann"}""")).Body);
        Assert.Equal("\"hello ann!\"", (await CallAsync(w, Who.Dak, HttpMethod.Post, "greet", """{"name":"ann","punct":"!"}""")).Body);
        // Keys that fit more than one overload: PostgREST's 300.
        var ambiguous = await CallAsync(w, Who.Dak, HttpMethod.Post, "either", "{}");
        Assert.Equal(HttpStatusCode.MultipleChoices, ambiguous.Status);
        Assert.Equal("PGRST203", Code(ambiguous.Body));
    }

    [Fact]
    public async Task Get_calls_stable_and_immutable_functions_with_arguments_in_the_query_string()
    {
        var w = await WorldAsync();
        Assert.Equal("15", (await CallAsync(w, Who.Dak, HttpMethod.Get, "add?a=5")).Body);
        Assert.Equal("\"hello bob\"", (await CallAsync(w, Who.Dak, HttpMethod.Get, "greet?name=bob")).Body);
        var head = await CallAsync(w, Who.Dak, HttpMethod.Head, "add?a=5");
        Assert.Equal(HttpStatusCode.OK, head.Status);
        Assert.Equal("", head.Body);
    }

    [Fact]
    public async Task A_volatile_function_is_refused_on_get_with_405_and_runs_nothing()
    {
        var w = await WorldAsync();
        var note = $"get{Guid.NewGuid():N}";
        var res = await CallAsync(w, Who.Dak, HttpMethod.Get, $"log_note?note={note}");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, res.Status);
        Assert.Equal("PGRST101", Code(res.Body));
        Assert.Equal(0, await NotesAsync(w, note));
        // A "STABLE" function that writes anyway fails in its read-only transaction: 405 with PostgreSQL's code.
        var lying = await CallAsync(w, Who.Dak, HttpMethod.Post, "sneaky_write", JsonSerializer.Serialize(new { note }));
        Assert.Equal(HttpStatusCode.MethodNotAllowed, lying.Status);
        Assert.Equal("25006", Code(lying.Body));
        Assert.Equal(0, await NotesAsync(w, note));
        // Other methods: 405 as well.
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await CallAsync(w, Who.Dak, HttpMethod.Patch, "add", "{}")).Status);
    }

    [Fact]
    public async Task Set_returning_functions_take_select_filters_order_limit_range_and_count_like_tables()
    {
        var w = await WorldAsync();
        var page = await CallAsync(w, Who.Dak, HttpMethod.Get, "cheap_items?max_price=2&select=name&order=price.desc&limit=2");
        Assert.Equal((HttpStatusCode.OK, """[{"name":"date"},{"name":"apple"}]"""), (page.Status, page.Body));
        var filtered = await CallAsync(w, Who.Dak, HttpMethod.Post, "cheap_items?name=like.*an*&select=n:name", "{}");
        Assert.Equal("""[{"n":"banana"}]""", filtered.Body);
        var counted = await CallAsync(w, Who.Dak, HttpMethod.Post, "cheap_items?select=id&order=id", "{}",
            ("Prefer", "count=exact"), ("Range", "1-2"));
        Assert.Equal(HttpStatusCode.PartialContent, counted.Status);
        Assert.Equal("1-2/4", counted.Response.Content.Headers.GetValues("Content-Range").Single());
        Assert.Equal(2, JsonDocument.Parse(counted.Body).RootElement.GetArrayLength());
        // RETURNS TABLE: rows; a single composite: one object; SETOF a scalar: an array of values.
        Assert.Equal("""[{"n":4,"total":7.0}]""", (await CallAsync(w, Who.Dak, HttpMethod.Get, "stats")).Body);
        var first = JsonDocument.Parse((await CallAsync(w, Who.Dak, HttpMethod.Get, "first_item?select=name")).Body).RootElement;
        Assert.Equal("apple", first.GetProperty("name").GetString());
        Assert.Equal("[1,2,3]", (await CallAsync(w, Who.Dak, HttpMethod.Get, "numbers?n=3")).Body);
        Assert.Equal("[2,3]", (await CallAsync(w, Who.Dak, HttpMethod.Get, "numbers?n=3&offset=1")).Body);
        // Accept: one object, or 406 when the rows are not exactly one.
        var one = await CallAsync(w, Who.Dak, HttpMethod.Get, "cheap_items?name=eq.cherry&select=price", null,
            ("Accept", "application/vnd.pgrst.object+json"));
        Assert.Equal("""{"price":3}""", one.Body);
        var many = await CallAsync(w, Who.Dak, HttpMethod.Get, "cheap_items", null, ("Accept", "application/vnd.pgrst.object+json"));
        Assert.Equal(HttpStatusCode.NotAcceptable, many.Status);
        // A column the function does not return: 400, not 500.
        var unknown = await CallAsync(w, Who.Dak, HttpMethod.Get, "cheap_items?nope=eq.1");
        Assert.Equal((HttpStatusCode.BadRequest, "42703"), (unknown.Status, Code(unknown.Body)));
    }

    [Fact]
    public async Task Single_object_bodies_void_results_and_bad_input()
    {
        var w = await WorldAsync();
        var single = await CallAsync(w, Who.Dak, HttpMethod.Post, "echo", """{"x":[1,2],"y":"z"}""", ("Prefer", "params=single-object"));
        Assert.Equal(HttpStatusCode.OK, single.Status);
        Assert.Equal("""{"x": [1, 2], "y": "z"}""", single.Body);
        Assert.Contains("params=single-object", single.Response.Headers.GetValues("Preference-Applied").Single());
        // Without the preference the body's keys are argument names — and a single unnamed json parameter takes it all.
        Assert.Equal("""{"a": 1}""", (await CallAsync(w, Who.Dak, HttpMethod.Post, "echo", """{"payload":{"a":1}}""")).Body);
        Assert.Equal("""{"raw":true}""", (await CallAsync(w, Who.Dak, HttpMethod.Post, "echo_raw", """{"raw":true}""")).Body);

        var note = $"void{Guid.NewGuid():N}";
        var nothing = await CallAsync(w, Who.Dak, HttpMethod.Post, "forget", JsonSerializer.Serialize(new { note }));
        Assert.Equal((HttpStatusCode.NoContent, ""), (nothing.Status, nothing.Body));
        Assert.Equal(1, await NotesAsync(w, note));

        foreach (var (path, body, status, code) in new (string, string?, HttpStatusCode, string)[]
                 {
                     ("add", "{not json", HttpStatusCode.BadRequest, "PGRST102"),
                     ("add", """{"a":"abc"}""", HttpStatusCode.BadRequest, "22P02"),
                     ("add?a=1&a=2", null, HttpStatusCode.BadRequest, "PGRST100"),
                     ("add?a=x", null, HttpStatusCode.BadRequest, "22P02"),
                     ("add?a=1&select=x", null, HttpStatusCode.BadRequest, "PGRST100"),
                     ("add", """{"a":1,"zzz":2}""", HttpStatusCode.NotFound, "PGRST202"),
                     ("%22%3Bdrop%20table%20items%3B--", "{}", HttpStatusCode.NotFound, "PGRST202"),
                 })
        {
            var res = await CallAsync(w, Who.Dak, body is null ? HttpMethod.Get : HttpMethod.Post, path, body);
            Assert.True(res.Status == status, $"{path} {body}: {(int)res.Status} {res.Body}");
            Assert.Equal(code, Code(res.Body));
        }
        Assert.Equal(4, (await TestApp.SqlAsync(w.Owner, w.Project.Id, "select count(*) from items"))[0].GetProperty("rows")[0][0].GetInt64());
    }

    [Fact]
    public async Task An_unknown_function_is_404_PGRST202_in_PostgRESTs_words()
    {
        var w = await WorldAsync();
        var schema = ProjectNaming.Schema(w.Project.Id);
        var res = await CallAsync(w, Who.Dak, HttpMethod.Post, "gret", """{"name":"x"}""");
        Assert.Equal(HttpStatusCode.NotFound, res.Status);
        var e = JsonDocument.Parse(res.Body).RootElement;
        Assert.Equal("PGRST202", e.GetProperty("code").GetString());
        Assert.Equal($"Could not find the function {schema}.gret(name) in the schema cache", e.GetProperty("message").GetString());
        Assert.Equal($"Searched for the function {schema}.gret with parameter name or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache.",
            e.GetProperty("details").GetString());
        Assert.Equal($"Perhaps you meant to call the function {schema}.greet", e.GetProperty("hint").GetString());
        var get = JsonDocument.Parse((await CallAsync(w, Who.Dak, HttpMethod.Get, "missing")).Body).RootElement;
        Assert.Equal($"Could not find the function {schema}.missing without parameters in the schema cache", get.GetProperty("message").GetString());
        // The hint names only functions the caller may execute: anon learns no name.
        var anon = JsonDocument.Parse((await CallAsync(w, Who.Anon, HttpMethod.Post, "gret", """{"name":"x"}""")).Body).RootElement;
        Assert.Equal(JsonValueKind.Null, anon.GetProperty("hint").ValueKind);
    }

    [Fact]
    public async Task A_function_not_allowed_answers_401_to_anon_and_403_to_users_and_runs_nothing_and_the_DB_API_KEY_always_may()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "rpc policy");
        await TestApp.SqlAsync(owner, p.Id, Fixture);
        var w = new World(owner, p, await SignUpAsync(p));
        // side_effects takes inserts from anyone: what stops a caller below is only the function's EXECUTE privilege.
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/tables/side_effects/access", new
        {
            anon_select = false, anon_insert = true, auth_insert = true, auth_select_own = false, auth_update_own = false,
            auth_delete_own = false, user_id_col = (string?)null,
        })).EnsureSuccessStatusCode();
        var note = $"deny{Guid.NewGuid():N}";
        var body = JsonSerializer.Serialize(new { note });

        var anon = await CallAsync(w, Who.Anon, HttpMethod.Post, "log_note", body);
        Assert.Equal(HttpStatusCode.Unauthorized, anon.Status);
        Assert.Equal("42501", Code(anon.Body));
        var user = await CallAsync(w, Who.User, HttpMethod.Post, "log_note", body);
        Assert.Equal(HttpStatusCode.Forbidden, user.Status);
        Assert.Equal("42501", Code(user.Body));
        Assert.Equal(0, await NotesAsync(w, note));
        Assert.Equal(HttpStatusCode.OK, (await CallAsync(w, Who.Dak, HttpMethod.Post, "log_note", body)).Status);
        Assert.Equal(1, await NotesAsync(w, note));

        // Allowed for signed-in users only: anon is still refused; then for anon too.
        await AllowAsync(w, "log_note", anon: false, auth: true);
        Assert.Equal(HttpStatusCode.OK, (await CallAsync(w, Who.User, HttpMethod.Post, "log_note", body)).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await CallAsync(w, Who.Anon, HttpMethod.Post, "log_note", body)).Status);
        Assert.Equal(2, await NotesAsync(w, note));
        await AllowAsync(w, "log_note", anon: true, auth: false);
        Assert.Equal(HttpStatusCode.OK, (await CallAsync(w, Who.Anon, HttpMethod.Post, "log_note", body)).Status);
        Assert.Equal(HttpStatusCode.Forbidden, (await CallAsync(w, Who.User, HttpMethod.Post, "log_note", body)).Status);
        Assert.Equal(3, await NotesAsync(w, note));
        await AllowAsync(w, "log_note", anon: false, auth: false);
        Assert.Equal(HttpStatusCode.Unauthorized, (await CallAsync(w, Who.Anon, HttpMethod.Post, "log_note", body)).Status);
        Assert.Equal(3, await NotesAsync(w, note));
    }

    [Fact]
    public async Task A_security_definer_function_is_not_callable_by_anon_until_allowed()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "rpc definer");
        await TestApp.SqlAsync(owner, p.Id, Fixture);
        var w = new World(owner, p, await SignUpAsync(p));
        var note = $"definer{Guid.NewGuid():N}";
        var body = JsonSerializer.Serialize(new { note });
        // side_effects is closed to anon (secure defaults), but the definer runs as the owner: it would bypass that.
        var refused = await CallAsync(w, Who.Anon, HttpMethod.Post, "as_definer", body);
        Assert.Equal((HttpStatusCode.Unauthorized, "42501"), (refused.Status, Code(refused.Body)));
        Assert.Equal(HttpStatusCode.Forbidden, (await CallAsync(w, Who.User, HttpMethod.Post, "as_definer", body)).Status);
        Assert.Equal(0, await NotesAsync(w, note));
        var listed = await app.Service<FunctionAccess>().ListAsync(p.Id);
        Assert.True(listed.Single(f => f.Name == "as_definer").SecurityDefiner);

        await AllowAsync(w, "as_definer", anon: true, auth: false);
        var allowed = await CallAsync(w, Who.Anon, HttpMethod.Post, "as_definer", body);
        Assert.Equal(HttpStatusCode.OK, allowed.Status);
        Assert.Equal(1, await NotesAsync(w, note));
    }

    [Fact]
    public async Task The_function_access_endpoint_reads_and_replaces_grants_strictly()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "rpc access");
        await TestApp.SqlAsync(owner, p.Id, Fixture);
        var url = $"/api/projects/{p.Id}/functions/greet/access";
        var fresh = await owner.GetFromJsonAsync<JsonElement>(url);
        Assert.Equal("""{"anon_execute":false,"auth_execute":false}""", fresh.GetRawText());

        var put = await owner.PutAsJsonAsync(url, new { anon_execute = true, auth_execute = false });
        Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        Assert.Equal("""{"anon_execute":true,"auth_execute":false}""", (await owner.GetFromJsonAsync<JsonElement>(url)).GetRawText());
        // Both overloads of greet: PostgreSQL says so.
        var grants = await TestApp.SqlAsync(owner, p.Id, $"""
            select count(*) filter (where has_function_privilege('proj_{p.Id}_anon', oid, 'EXECUTE')),
                   count(*) filter (where has_function_privilege('proj_{p.Id}_user', oid, 'EXECUTE')),
                   count(*) filter (where has_function_privilege('public', oid, 'EXECUTE'))
            from pg_proc where proname = 'greet' and pronamespace = 'proj_{p.Id}'::regnamespace
            """);
        Assert.Equal("[2,0,0]", grants[0].GetProperty("rows")[0].GetRawText());

        foreach (var bad in new[] { """{"anon_execute":true}""", """{"anon_execute":true,"auth_execute":false,"extra":1}""",
                     """{"anon_execute":"yes","auth_execute":false}""", "[]", "{" })
        {
            var res = await owner.PutAsync(url, new StringContent(bad, Encoding.UTF8, "application/json"));
            Assert.True(res.StatusCode == HttpStatusCode.BadRequest, $"{bad}: {(int)res.StatusCode}");
        }
        var unknownKey = await owner.PutAsync(url, new StringContent("""{"anon_execute":true,"auth_execute":false,"extra":1}""", Encoding.UTF8, "application/json"));
        Assert.Contains("extra", await unknownKey.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, (await owner.GetAsync($"/api/projects/{p.Id}/functions/nope/access")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/functions/nope/access",
            new { anon_execute = true, auth_execute = true })).StatusCode);
        var stranger = await app.NewUserClientAsync();
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.GetAsync(url)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await stranger.PutAsJsonAsync(url, new { anon_execute = true, auth_execute = true })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await app.Factory.CreateClient().GetAsync(url)).StatusCode);
    }

    [Fact]
    public async Task Functions_made_or_opened_by_any_path_lose_public_execute_and_old_projects_are_secured()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "rpc paths");
        // Through the console, even granting PUBLIC on purpose: the platform takes it back after the DDL.
        await TestApp.SqlAsync(owner, p.Id, "create function f1() returns int language sql as 'select 1'; grant execute on function f1() to public");
        Assert.False(await PublicMayAsync(owner, p.Id, "f1"));
        // Through a direct connection, with PostgreSQL's old default put back (a project made before the secure default).
        var (code, _, err) = await TestApp.PsqlAsync(p.ConnectionUrl, "-c",
            "alter default privileges grant execute on functions to public; alter default privileges in schema proj_" + p.Id
            + " grant execute on functions to public; create function f2() returns int language sql as 'select 2';");
        Assert.True(code == 0, err);
        Assert.True(await PublicMayAsync(owner, p.Id, "f2"));
        var secured = await app.Service<FunctionAccess>().SecureExistingProjectsAsync();
        Assert.Contains(p.Id, secured);
        Assert.False(await PublicMayAsync(owner, p.Id, "f2"));
        var (code3, _, err3) = await TestApp.PsqlAsync(p.ConnectionUrl, "-c", "create function f3() returns int language sql as 'select 3';");
        Assert.True(code3 == 0, err3);
        Assert.False(await PublicMayAsync(owner, p.Id, "f3")); // the default privileges are back to the secure ones
        // The owner's own functions stay callable with the DB_API_KEY.
        var w = new World(owner, p, "");
        Assert.Equal("2", (await CallAsync(w, Who.Dak, HttpMethod.Post, "f2", "{}")).Body);
        Assert.Equal(HttpStatusCode.Unauthorized, (await CallAsync(w, Who.Anon, HttpMethod.Post, "f2", "{}")).Status);
    }

    [Fact]
    public async Task Names_that_need_quoting_are_called_and_granted_as_they_are()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "rpc quoting");
        var made = await TestApp.SqlAsync(owner, p.Id, """"
            create function "Odd ""Name"""("x y" int, "Ünï" text default 'é') returns text language sql immutable as $$ select "Ünï" || "x y" $$
            """");
        Assert.False(made[0].TryGetProperty("error", out var e), e.ToString());
        var w = new World(owner, p, "");
        var path = Uri.EscapeDataString("Odd \"Name\"");
        var call = await CallAsync(w, Who.Dak, HttpMethod.Post, path, """{"x y": 2}""");
        Assert.Equal((HttpStatusCode.OK, "\"é2\""), (call.Status, call.Body));
        Assert.Equal("\"ü3\"", (await CallAsync(w, Who.Dak, HttpMethod.Get, $"{path}?x%20y=3&{Uri.EscapeDataString("Ünï")}=ü")).Body);
        Assert.Equal(HttpStatusCode.Unauthorized, (await CallAsync(w, Who.Anon, HttpMethod.Post, path, """{"x y": 2}""")).Status);
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/functions/{path}/access", new { anon_execute = true, auth_execute = false }))
            .EnsureSuccessStatusCode();
        Assert.Equal(HttpStatusCode.OK, (await CallAsync(w, Who.Anon, HttpMethod.Post, path, """{"x y": 2}""")).Status);
    }

    [Fact]
    public async Task A_function_that_resets_its_role_leaves_the_next_call_in_the_callers_role()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "rpc role");
        await TestApp.SqlAsync(owner, p.Id, """
            create function drop_role() returns text language plpgsql as $$ begin reset role; return current_user; end $$;
            create function whoami() returns text language sql stable as 'select current_user::text'
            """);
        var w = new World(owner, p, "");
        await AllowAsync(w, "drop_role", anon: true, auth: false);
        await AllowAsync(w, "whoami", anon: true, auth: false);
        for (var i = 0; i < 3; i++)
        {
            var reset = await CallAsync(w, Who.Anon, HttpMethod.Post, "drop_role", "{}");
            Assert.Equal($"\"{RestConnections.LoginRole(p.Id, RestRole.Anon)}\"", reset.Body); // its own login: no privilege at all
            Assert.Equal($"\"{ProjectNaming.AnonRole(p.Id)}\"", (await CallAsync(w, Who.Anon, HttpMethod.Get, "whoami")).Body);
        }
    }

    [Fact]
    public async Task The_openapi_document_lists_only_the_functions_the_caller_may_execute()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "rpc openapi");
        await TestApp.SqlAsync(owner, p.Id, Fixture);
        var w = new World(owner, p, "");
        async Task<JsonElement> PathsAsync(Who who)
        {
            var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/");
            req.Headers.Add("apikey", p.AnonKey);
            if (who == Who.Dak) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", p.ApiKey);
            var res = await app.Factory.CreateClient().SendAsync(req);
            return JsonDocument.Parse(await res.Content.ReadAsStringAsync()).RootElement.GetProperty("paths").Clone();
        }
        var all = await PathsAsync(Who.Dak);
        Assert.True(all.TryGetProperty("/rpc/log_note", out var logNote));
        Assert.True(logNote.TryGetProperty("post", out _));
        Assert.False(logNote.TryGetProperty("get", out _)); // volatile: POST only
        Assert.True(all.GetProperty("/rpc/greet").TryGetProperty("get", out _));
        Assert.DoesNotContain((await PathsAsync(Who.Anon)).EnumerateObject(), e => e.Name.StartsWith("/rpc/", StringComparison.Ordinal));
        await AllowAsync(w, "greet", anon: true, auth: true);
        var anon = (await PathsAsync(Who.Anon)).EnumerateObject().Select(e => e.Name).Where(n => n.StartsWith("/rpc/", StringComparison.Ordinal));
        Assert.Equal(["/rpc/greet"], anon);
    }

    private async Task<string> SignUpAsync(ProjectInfo p)
    {
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        var signup = new HttpRequestMessage(HttpMethod.Post, $"/db/{p.Id}/auth/signup")
        {
            Content = JsonContent.Create(new { email = $"rpc{Guid.NewGuid():N}@example.com", password = "an end user password" }),
        };
        signup.Headers.Add("apikey", p.AnonKey);
        var session = await (await http.SendAsync(signup)).EnsureSuccessStatusCode().Content.ReadFromJsonAsync<JsonElement>();
        return session.GetProperty("access_token").GetString()!;
    }

    private static async Task<bool> PublicMayAsync(HttpClient owner, string projectId, string fn)
    {
        var r = await TestApp.SqlAsync(owner, projectId, $"select has_function_privilege('public', '{fn}()', 'EXECUTE')");
        Assert.False(r[0].TryGetProperty("error", out var e), e.ToString());
        return r[0].GetProperty("rows")[0][0].GetBoolean();
    }

    private static string? Code(string body) => JsonDocument.Parse(body).RootElement.GetProperty("code").GetString();
}
