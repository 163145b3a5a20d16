// REST runs on the project's own logins (RestConnections), so code the project wrote — here a trigger — that runs
// RESET ROLE or SET ROLE during a REST request cannot reach the platform role or another project: it falls back to a
// login with no privilege of its own. (Before, REST logged in as the platform role, and RESET ROLE in a trigger read
// platform tables.)
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using DbStudio.Core.Rest;
using DbStudio.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using DbStudio.Core.Projects;

namespace DbStudio.Tests.Endpoints;

public class RestLoginTests(TestApp app)
{
    private static HttpRequestMessage Post(string project, string table, string key, object body, bool admin = false)
    {
        var req = new HttpRequestMessage(HttpMethod.Post, $"/db/{project}/rest/{table}") { Content = JsonContent.Create(body) };
        if (admin) req.Headers.Authorization = new("Bearer", key); else req.Headers.Add("apikey", key);
        req.Headers.Add("Prefer", "return=representation");
        return req;
    }

    private static async Task AnonMayInsertAsync(HttpClient owner, string project, string table, bool anonSelect) =>
        (await owner.PutAsJsonAsync($"/api/projects/{project}/tables/{table}/access", new
        {
            anon_select = anonSelect, anon_insert = true, auth_insert = false, auth_select_own = false, auth_update_own = false,
            auth_delete_own = false, user_id_col = (string?)null,
        })).EnsureSuccessStatusCode();

    [Fact]
    public async Task A_trigger_that_resets_its_role_reaches_neither_the_platform_nor_another_project()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "escape");
        var other = await TestApp.CreateProjectAsync(owner, "victim");
        await TestApp.SqlAsync(owner, other.Id, "create table secrets (id int primary key, s text); insert into secrets values (1, 'victim data')");
        await TestApp.SqlAsync(owner, p.Id, $$"""
            create table notes (id serial primary key, note text);
            create function probe() returns trigger language plpgsql as $f$
            declare n bigint;
            begin
              reset role;
              new.note := 'probe: ' || current_user;
              begin select count(*) into n from platform.projects; new.note := new.note || ' read platform';
              exception when insufficient_privilege then new.note := new.note || ' no platform'; end;
              begin select count(*) into n from proj_{{other.Id}}.secrets; new.note := new.note || ' read victim';
              exception when insufficient_privilege then new.note := new.note || ' no victim'; end;
              begin execute 'set role proj_{{other.Id}}_owner'; new.note := new.note || ' became victim';
              exception when insufficient_privilege then new.note := new.note || ' not victim'; end;
              begin execute 'set role dbstudio_test'; new.note := new.note || ' became platform';
              exception when insufficient_privilege or undefined_object then new.note := new.note || ' not platform'; end;
              raise exception '%', new.note;
            end $f$;
            create trigger probe before insert on notes for each row execute function probe();
            """);
        await AnonMayInsertAsync(owner, p.Id, "notes", anonSelect: true);
        using var http = new HttpClient { BaseAddress = app.BaseUrl };

        foreach (var (key, admin, login) in new[]
                 {
                     (p.AnonKey, false, RestConnections.LoginRole(p.Id, RestRole.Anon)),
                     (p.ApiKey, true, RestConnections.LoginRole(p.Id, RestRole.Owner)),
                 })
        {
            // The trigger reports what it could reach as its error (so nothing is written).
            var res = await http.SendAsync(Post(p.Id, "notes", key, new { note = "x" }, admin));
            var body = await res.Content.ReadAsStringAsync();
            Assert.True(res.StatusCode == HttpStatusCode.BadRequest, body);
            Assert.Equal($"probe: {login} no platform no victim not victim not platform",
                JsonDocument.Parse(body).RootElement.GetProperty("message").GetString());

            // The next requests on the pool still act as the caller's role.
            for (var i = 0; i < 6; i++)
            {
                var get = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/notes?select=id");
                if (admin) get.Headers.Authorization = new("Bearer", key); else get.Headers.Add("apikey", key);
                var read = await http.SendAsync(get);
                Assert.True(read.StatusCode == HttpStatusCode.OK, await read.Content.ReadAsStringAsync());
            }
        }
    }

    [Fact]
    public async Task An_anonymous_request_cannot_take_the_owners_role_through_a_trigger()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "climb");
        await TestApp.SqlAsync(owner, p.Id, $$"""
            create table t (id serial primary key, note text);
            create table private_t (id int primary key, s text); insert into private_t values (1, 'owner only');
            create function climb() returns trigger language plpgsql as $f$
            begin
              execute 'set role proj_{{p.Id}}_owner';
              delete from private_t;
              return new;
            end $f$;
            create trigger climb before insert on t for each row execute function climb();
            """);
        await AnonMayInsertAsync(owner, p.Id, "t", anonSelect: false);
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        var res = await http.SendAsync(Post(p.Id, "t", p.AnonKey, new { note = "x" }));
        var body = await res.Content.ReadAsStringAsync();
        Assert.True(res.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden, $"{(int)res.StatusCode} {body}");
        Assert.Contains("42501", body);
        var left = await TestApp.SqlAsync(owner, p.Id, "select count(*) as n from private_t; select count(*) as n from t");
        Assert.Equal(1, left[0].GetProperty("rows")[0][0].GetInt64());
        Assert.Equal(0, left[1].GetProperty("rows")[0][0].GetInt64());
    }

    [Fact]
    public async Task The_rest_logins_have_no_privilege_of_their_own_and_go_with_the_project()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "logins");
        await TestApp.SqlAsync(owner, p.Id, "create table t (id int primary key)");
        using var http = new HttpClient { BaseAddress = app.BaseUrl };
        var admin = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/t");
        admin.Headers.Authorization = new("Bearer", p.ApiKey);
        var first = await http.SendAsync(admin);
        Assert.True(first.StatusCode == HttpStatusCode.OK, await first.Content.ReadAsStringAsync());

        await using var db = new Npgsql.NpgsqlConnection(app.Db.PlatformConnectionString);
        await db.OpenAsync();
        var logins = RestConnections.LoginRoles(p.Id).ToArray();
        // Two logins: the shared one is a member of the anon, user and user_admin roles; the owner's of the owner only.
        var expected = new Dictionary<string, string>
        {
            [RestConnections.LoginRole(p.Id, RestRole.Anon)] =
                string.Join(",", new[] { ProjectNaming.AnonRole(p.Id), ProjectNaming.UserRole(p.Id), ProjectNaming.UserAdminRole(p.Id) }.Order(StringComparer.Ordinal)),
            [RestConnections.LoginRole(p.Id, RestRole.Owner)] = ProjectNaming.OwnerRole(p.Id),
        };
        await using (var cmd = new Npgsql.NpgsqlCommand("""
            SELECT r.rolname, r.rolcanlogin, r.rolinherit, r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls,
                   (SELECT string_agg(g.rolname, ',' ORDER BY g.rolname COLLATE "C") FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)
            FROM pg_roles r WHERE r.rolname = ANY($1) ORDER BY r.rolname
            """, db))
        {
            cmd.Parameters.Add(new() { Value = logins });
            await using var r = await cmd.ExecuteReaderAsync();
            var seen = 0;
            while (await r.ReadAsync())
            {
                seen++;
                Assert.True(r.GetBoolean(1));   // LOGIN
                Assert.False(r.GetBoolean(2));  // NOINHERIT: nothing of the roles it acts as unless it SETs one
                Assert.False(r.GetBoolean(3));
                Assert.Equal(expected[r.GetString(0)], r.GetString(4));
            }
            Assert.Equal(2, seen);
        }

        var deleted = await owner.DeleteAsync($"/api/projects/{p.Id}");
        Assert.True(deleted.IsSuccessStatusCode, await deleted.Content.ReadAsStringAsync());
        await using (var cmd = new Npgsql.NpgsqlCommand("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)", db))
        {
            cmd.Parameters.Add(new() { Value = logins.Concat(RestConnections.LegacyLoginRoles(p.Id)).ToArray() });
            Assert.Equal(0L, await cmd.ExecuteScalarAsync());
        }
    }

    /// <summary>
    /// The attack on one shared login (issue 17): code the project wrote that runs for an anonymous caller tries every role
    /// it can name and leaves the pooled session in the most powerful one it reached. DESIGN's promises hold: no other
    /// project, no platform, not the owner; the next requests on the same connections act as their own callers again
    /// (the role is set per transaction). What it can reach — the project's user and user_admin roles — is the documented
    /// trade-off inside one project.
    /// </summary>
    [Fact]
    public async Task Code_run_for_an_anonymous_caller_reaches_no_other_project_nor_the_owner_and_its_role_ends_with_the_request()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner, "shared login");
        var other = await TestApp.CreateProjectAsync(owner, "neighbour");
        await TestApp.SqlAsync(owner, other.Id, "create table secrets (id int primary key, s text); insert into secrets values (1, 'neighbour data')");
        var platformRole = new Npgsql.NpgsqlConnectionStringBuilder(app.Db.PlatformConnectionString).Username!;
        string[] targets =
        [
            ProjectNaming.UserRole(p.Id), ProjectNaming.UserAdminRole(p.Id), ProjectNaming.OwnerRole(p.Id),
            RestConnections.LoginRole(p.Id, RestRole.Owner), ProjectNaming.AnonRole(other.Id), ProjectNaming.OwnerRole(other.Id),
            RestConnections.LoginRole(other.Id, RestRole.Anon), platformRole,
        ];
        await TestApp.SqlAsync(owner, p.Id, $$"""
            create table notes (id serial primary key, note text);
            create table private_t (id int primary key, s text); insert into private_t values (1, 'owner only');
            create function climb() returns trigger language plpgsql as $f$
            declare r text; report text := '';
            begin
              foreach r in array array[{{string.Join(", ", targets.Select(t => "'" + t + "'"))}}] loop
                begin execute format('set role %I', r); report := report || r || ':yes ';
                exception when insufficient_privilege or undefined_object then report := report || r || ':no ';
                end;
              end loop;
              begin perform count(*) from proj_{{other.Id}}.secrets; report := report || 'neighbour:read';
              exception when insufficient_privilege then report := report || 'neighbour:no';
              end;
              -- leave the session (not just the transaction) in the strongest role reached, for whoever uses it next
              execute format('set session role %I', '{{ProjectNaming.UserAdminRole(p.Id)}}');
              new.note := report;
              return new;
            end $f$;
            create trigger climb before insert on notes for each row execute function climb();
            create function whoami() returns text language sql stable as 'select current_user::text';
            """);
        await AnonMayInsertAsync(owner, p.Id, "notes", anonSelect: true);
        (await owner.PutAsJsonAsync($"/api/projects/{p.Id}/functions/whoami/access", new { anon_execute = true, auth_execute = false }))
            .EnsureSuccessStatusCode();
        using var http = new HttpClient { BaseAddress = app.BaseUrl };

        for (var round = 0; round < 3; round++)
        {
            var res = await http.SendAsync(Post(p.Id, "notes", p.AnonKey, new { note = "x" }));
            var body = await res.Content.ReadAsStringAsync();
            Assert.True(res.StatusCode == HttpStatusCode.Created, body);
            var report = JsonDocument.Parse(body).RootElement[0].GetProperty("note").GetString()!.Split(' ');
            Assert.Equal(
            [
                $"{ProjectNaming.UserRole(p.Id)}:yes", $"{ProjectNaming.UserAdminRole(p.Id)}:yes", // the project's own siblings
                $"{ProjectNaming.OwnerRole(p.Id)}:no", $"{RestConnections.LoginRole(p.Id, RestRole.Owner)}:no",
                $"{ProjectNaming.AnonRole(other.Id)}:no", $"{ProjectNaming.OwnerRole(other.Id)}:no",
                $"{RestConnections.LoginRole(other.Id, RestRole.Anon)}:no", $"{platformRole}:no", "neighbour:no",
            ], report);

            // The next requests — on the same pooled connections — act as their callers, not as what the trigger left.
            for (var i = 0; i < 4; i++)
            {
                var who = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/rpc/whoami");
                who.Headers.Add("apikey", p.AnonKey);
                var whoRes = await http.SendAsync(who);
                Assert.Equal($"\"{ProjectNaming.AnonRole(p.Id)}\"", await whoRes.Content.ReadAsStringAsync());
                var secret = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/private_t");
                secret.Headers.Add("apikey", p.AnonKey);
                var secretRes = await http.SendAsync(secret);
                Assert.True(secretRes.StatusCode == HttpStatusCode.Unauthorized, await secretRes.Content.ReadAsStringAsync());
            }
        }

        // PostgreSQL's own view: each login of the project can become only roles of its project.
        await using var db = new Npgsql.NpgsqlConnection(app.Db.PlatformConnectionString);
        await db.OpenAsync();
        foreach (var login in RestConnections.LoginRoles(p.Id))
        {
            await using var cmd = new Npgsql.NpgsqlCommand(
                "SELECT array_agg(rolname::text ORDER BY rolname COLLATE \"C\") FROM pg_roles WHERE pg_has_role($1::name, oid, 'MEMBER')", db);
            cmd.Parameters.Add(new() { Value = login });
            var reachable = (string[])(await cmd.ExecuteScalarAsync())!;
            // (and the group every owner is in, which holds CONNECT on the database and nothing else)
            var group = ProjectProvisioner.OwnersGroup(db.Database);
            Assert.All(reachable.Where(r => r != group), r => Assert.StartsWith($"proj_{p.Id}_", r));
            Assert.DoesNotContain(ProjectNaming.OwnerRole(p.Id), login == RestConnections.LoginRole(p.Id, RestRole.Anon) ? reachable : []);
        }
    }
}

public class RestConnectionBudgetTests(TestApp app)
{
    [Fact]
    public async Task Many_projects_share_one_connection_budget_and_every_request_is_answered()
    {
        await using var small = new AppFactory(app.Db.PlatformConnectionString,
            new Dictionary<string, string?> { ["DbStudio:Rest:MaxConnections"] = "4" });
        var url = small.StartOnLoopback();
        using var owner = small.CreateClient();
        var email = $"u{Guid.NewGuid():N}@example.com";
        (await owner.PostAsJsonAsync("/api/auth/register", new { email, password = "a long enough password" })).EnsureSuccessStatusCode();
        var login = await (await owner.PostAsJsonAsync("/api/auth/login", new { email, password = "a long enough password" }))
            .Content.ReadFromJsonAsync<JsonElement>();
        owner.DefaultRequestHeaders.Authorization = new("Bearer", login.GetProperty("accessToken").GetString());
        var projects = new List<DbStudio.Core.Projects.ProjectInfo>();
        for (var i = 0; i < 10; i++)
        {
            var p = await TestApp.CreateProjectAsync(owner, $"budget {i}");
            await TestApp.SqlAsync(owner, p.Id, "create table t (id int primary key); insert into t values (1)");
            projects.Add(p);
        }
        var connections = small.Services.GetRequiredService<RestConnections>();
        using var http = new HttpClient { BaseAddress = url };
        var peak = 0;
        var requests = Enumerable.Range(0, 200).Select(async i =>
        {
            var p = projects[i % projects.Count];
            var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/t?id=eq.1");
            req.Headers.Authorization = new("Bearer", p.ApiKey);
            var res = await http.SendAsync(req);
            InterlockedMax(ref peak, connections.OpenCount);
            return res.StatusCode;
        });
        var statuses = await Task.WhenAll(requests);
        Assert.True(statuses.All(s => s == HttpStatusCode.OK),
            $"{statuses.Count(s => s != HttpStatusCode.OK)} not OK ({string.Join(",", statuses.Where(s => s != HttpStatusCode.OK).Distinct())}); " +
            $"the app logged: {string.Join("\n", small.Errors.Take(3))}");
        Assert.True(peak <= 4, $"{peak} connections open");

        // PostgreSQL agrees: no more than the budget of this instance's REST sessions for these projects.
        await using var db = new Npgsql.NpgsqlConnection(app.Db.PlatformConnectionString);
        await db.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand("SELECT count(*) FROM pg_stat_activity WHERE usename = ANY($1)", db);
        cmd.Parameters.Add(new() { Value = projects.SelectMany(p => RestConnections.LoginRoles(p.Id)).ToArray() });
        Assert.True((long)(await cmd.ExecuteScalarAsync())! <= 4);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int seen;
        while (value > (seen = Volatile.Read(ref target)) && Interlocked.CompareExchange(ref target, value, seen) != seen) { }
    }
}
