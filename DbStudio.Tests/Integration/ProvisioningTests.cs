// Provisioning and deletion on a real PostgreSQL: exactly the objects of DESIGN §2, nothing left behind,
// safe in parallel, all-or-nothing.
using System.Net;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;
using Npgsql;

namespace DbStudio.Tests.Integration;

public class ProvisioningTests(TestApp app)
{
    private async Task<T> QueryAsync<T>(string sql, params object[] args)
    {
        await using var conn = new NpgsqlConnection(app.Db.SuperuserConnectionString.Replace("Database=postgres", $"Database={PostgresServer.PlatformDatabase}"));
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        foreach (var a in args) cmd.Parameters.Add(new NpgsqlParameter { Value = a });
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    private Task<long> CountObjectsAsync(string id) => QueryAsync<long>(
        "SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'proj\\_' || $1 || '\\_%') + (SELECT count(*) FROM pg_namespace WHERE nspname = 'proj_' || $1)", id);

    [Fact]
    public async Task A_project_gets_its_schema_and_its_roles_with_the_right_attributes()
    {
        var client = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(client);
        Assert.Equal(5, await CountObjectsAsync(p.Id)); // schema + owner, anon, user, user_admin
        Assert.Equal($"proj_{p.Id}_owner", await QueryAsync<string>("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", p.Schema));
        Assert.Equal("t f f f f f", await QueryAsync<string>(
            "SELECT concat_ws(' ', rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls) FROM pg_roles WHERE rolname = $1",
            $"proj_{p.Id}_owner"));
        Assert.Equal(0L, await QueryAsync<long>(
            "SELECT count(*) FROM pg_roles WHERE rolname IN ($1, $2, $3) AND rolcanlogin", $"proj_{p.Id}_anon", $"proj_{p.Id}_user", $"proj_{p.Id}_user_admin"));
        Assert.False(await QueryAsync<bool>("SELECT has_database_privilege('public', current_database(), 'CONNECT')"));
        Assert.False(await QueryAsync<bool>("SELECT has_schema_privilege($1, 'public', 'CREATE')", $"proj_{p.Id}_owner"));
        Assert.Matches(@"^postgresql://proj_[a-z0-9]+_owner:[A-Za-z0-9]{32}@127\.0\.0\.1:\d+/dbstudio_test$", p.ConnectionUrl);
        // The platform's login keeps no membership in the project's roles and no way into its schema (issue 11), even
        // after the project has been used through REST, the panel and the console.
        await TestApp.SqlAsync(client, p.Id, "create table used (id int primary key)");
        var req = new HttpRequestMessage(HttpMethod.Get, $"/db/{p.Id}/rest/used");
        req.Headers.Authorization = new("Bearer", p.ApiKey);
        (await app.Factory.CreateClient().SendAsync(req)).EnsureSuccessStatusCode();
        Assert.Equal(0L, await QueryAsync<long>(
            "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = $2) AND r.rolname LIKE 'proj\\_' || $1 || '\\_%'",
            p.Id, PostgresServer.PlatformRole));
        Assert.False(await QueryAsync<bool>("SELECT has_schema_privilege($2, $1, 'USAGE')", p.Schema, PostgresServer.PlatformRole));
    }

    [Fact]
    public async Task Deletion_leaves_no_stray_roles_or_schemas_even_with_objects_and_open_sessions()
    {
        var client = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(client);
        await TestApp.SqlAsync(client, p.Id, "create table a (id int primary key); create view v as select * from a; create function f() returns int language sql as 'select 1'");
        await using var open = new NpgsqlConnection(ConfinementTests.ConnectionStringFromUrl(p.ConnectionUrl));
        await open.OpenAsync(); // a Connection URL client still connected
        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/api/projects/{p.Id}")).StatusCode);
        Assert.Equal(0, await CountObjectsAsync(p.Id));
        Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/projects/{p.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await client.DeleteAsync($"/api/projects/{p.Id}")).StatusCode);
    }

    [Fact]
    public async Task Projects_can_be_created_and_deleted_in_parallel()
    {
        var client = await app.NewUserClientAsync();
        var created = await Task.WhenAll(Enumerable.Range(0, 12).Select(i => TestApp.CreateProjectAsync(client, $"p{i}")));
        Assert.Equal(12, created.Select(p => p.Id).Distinct().Count());
        var deleted = await Task.WhenAll(created.Select(p => client.DeleteAsync($"/api/projects/{p.Id}")));
        Assert.All(deleted, r => Assert.Equal(HttpStatusCode.NoContent, r.StatusCode));
        foreach (var p in created) Assert.Equal(0, await CountObjectsAsync(p.Id));
    }

    [Fact]
    public async Task A_failure_half_way_leaves_nothing_behind()
    {
        // Simulate a crash after the roles were created: the transaction never commits.
        var id = ProjectNaming.NewId();
        await using var conn = new NpgsqlConnection(app.Db.PlatformConnectionString);
        await conn.OpenAsync();
        await using (var tx = await conn.BeginTransactionAsync())
        {
            await ProjectProvisioner.CreateAsync(conn, tx, id, ProjectNaming.NewPassword(), 5, default);
            Assert.Equal(5, await CountInTx(conn, tx, id));
            // no commit: disposed = rolled back, as when the process dies
        }
        Assert.Equal(0, await CountObjectsAsync(id));
        // Deleting a project that only half exists is fine too (idempotent drop).
        await using (var tx = await conn.BeginTransactionAsync())
        {
            await ProjectProvisioner.DropAsync(conn, tx, id, default);
            await tx.CommitAsync();
        }
    }

    private static async Task<long> CountInTx(NpgsqlConnection conn, NpgsqlTransaction tx, string id)
    {
        await using var cmd = new NpgsqlCommand(
            "SELECT (SELECT count(*) FROM pg_roles WHERE rolname LIKE 'proj\\_' || $1 || '\\_%') + (SELECT count(*) FROM pg_namespace WHERE nspname = 'proj_' || $1)", conn, tx);
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        return (long)(await cmd.ExecuteScalarAsync())!;
    }
}

public class ConnectionUrlTests(TestApp app)
{
    [Fact]
    public async Task The_connection_url_works_with_psql_as_it_is()
    {
        var client = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(client);
        await TestApp.SqlAsync(client, p.Id, "create table hello (msg text); insert into hello values ('from the console')");
        var (exit, output, error) = await TestApp.PsqlAsync(p.ConnectionUrl, "-tAc", "select current_user || ' ' || current_schema() || ' ' || msg from hello");
        Assert.True(exit == 0, error);
        Assert.Equal($"proj_{p.Id}_owner proj_{p.Id} from the console", output.Trim());
    }
}
