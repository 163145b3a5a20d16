// The platform management API (DESIGN §7) through WebApplicationFactory on a real PostgreSQL.
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using DbStudio.Core.Projects;
using DbStudio.Tests.Infrastructure;

namespace DbStudio.Tests.Endpoints;

public class ManagementApiTests(TestApp app)
{
    [Fact]
    public async Task Healthz_reports_healthy()
    {
        // Healthy once the change listener has connected (Degraded for the moment before).
        var deadline = DateTime.UtcNow.AddSeconds(10);
        string health;
        while ((health = await app.Factory.CreateClient().GetStringAsync("/healthz")) != "Healthy" && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal("Healthy", health);
    }

    [Fact]
    public async Task A_new_account_can_log_in_at_once_and_create_a_project_with_the_documented_shape()
    {
        var client = await app.NewUserClientAsync();
        var res = await client.PostAsJsonAsync("/api/projects", new { name = "  Shop  " });
        Assert.Equal(HttpStatusCode.Created, res.StatusCode);
        var json = await res.Content.ReadFromJsonAsync<JsonElement>();
        foreach (var field in new[] { "id", "name", "schema", "restUrl", "anonKey", "apiKey", "connectionUrl" })
            Assert.Equal(JsonValueKind.String, json.GetProperty(field).ValueKind);
        var id = json.GetProperty("id").GetString()!;
        Assert.Equal("Shop", json.GetProperty("name").GetString());
        Assert.Equal($"proj_{id}", json.GetProperty("schema").GetString());
        Assert.Equal($"{app.BaseUrl.GetLeftPart(UriPartial.Authority)}/db/{id}/rest", json.GetProperty("restUrl").GetString());
        Assert.StartsWith("anon_", json.GetProperty("anonKey").GetString());
        Assert.StartsWith("dak_", json.GetProperty("apiKey").GetString());
        Assert.Equal($"/api/projects/{id}", res.Headers.Location!.OriginalString);

        var list = await client.GetFromJsonAsync<List<ProjectInfo>>("/api/projects");
        Assert.Equal(id, Assert.Single(list!).Id);
        var one = await client.GetFromJsonAsync<ProjectInfo>($"/api/projects/{id}");
        Assert.Equal(json.GetProperty("apiKey").GetString(), one!.ApiKey); // secrets decrypt back to the same values
    }

    [Fact]
    public async Task Another_users_project_is_404_for_every_verb()
    {
        var owner = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(owner);
        var other = await app.NewUserClientAsync();
        Assert.Equal(HttpStatusCode.NotFound, (await other.GetAsync($"/api/projects/{p.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.DeleteAsync($"/api/projects/{p.Id}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsJsonAsync($"/api/projects/{p.Id}/sql", new { sql = "select 1" })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await other.PostAsJsonAsync($"/api/projects/{p.Id}/assistant/sql", new { text = "<sql>select 1</sql>" })).StatusCode);
        Assert.Empty((await other.GetFromJsonAsync<List<ProjectInfo>>("/api/projects"))!);
        Assert.Equal(HttpStatusCode.OK, (await owner.GetAsync($"/api/projects/{p.Id}")).StatusCode); // still there
    }

    [Theory]
    [InlineData("GET", "/api/projects")]
    [InlineData("POST", "/api/projects")]
    [InlineData("POST", "/api/projects/abc/sql")]
    public async Task Without_a_login_the_api_answers_401(string method, string path)
    {
        var res = await app.Factory.CreateClient().SendAsync(new HttpRequestMessage(new HttpMethod(method), path)
        {
            Content = new StringContent("{}", Encoding.UTF8, "application/json"),
        });
        Assert.Equal(HttpStatusCode.Unauthorized, res.StatusCode);
    }

    [Fact]
    public async Task A_forged_token_is_401()
    {
        var client = app.Factory.CreateClient();
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "CfDJ8forged");
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.GetAsync("/api/projects")).StatusCode);
    }

    [Theory]
    [InlineData("{\"name\":\"\"}")]
    [InlineData("{\"name\":\"   \"}")]
    [InlineData("{}")]
    [InlineData("{\"name\":\"a\\u0000b\"}")]
    [InlineData("{\"name\":5}")]
    [InlineData("{\"name\":")]
    [InlineData("[1,2]")]
    public async Task Bad_project_input_is_400_and_creates_nothing(string body)
    {
        var client = await app.NewUserClientAsync();
        var res = await client.PostAsync("/api/projects", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
        Assert.Empty((await client.GetFromJsonAsync<List<ProjectInfo>>("/api/projects"))!);
    }

    [Fact]
    public async Task A_name_over_100_characters_is_refused()
    {
        var client = await app.NewUserClientAsync();
        var res = await client.PostAsJsonAsync("/api/projects", new { name = new string('x', 101) });
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"sql\":null}")]
    [InlineData("{\"sql\":[1]}")]
    [InlineData("not json")]
    public async Task Bad_sql_requests_are_400(string body)
    {
        var client = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(client);
        var res = await client.PostAsync($"/api/projects/{p.Id}/sql", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, res.StatusCode);
    }

    [Fact]
    public async Task Weird_project_ids_are_404_not_500()
    {
        var client = await app.NewUserClientAsync();
        foreach (var id in new[] { "ABC", "a'b", "x%22y", new string('a', 200), "proj_x" })
        {
            Assert.Equal(HttpStatusCode.NotFound, (await client.GetAsync($"/api/projects/{id}")).StatusCode);
            Assert.Equal(HttpStatusCode.NotFound, (await client.PostAsJsonAsync($"/api/projects/{id}/sql", new { sql = "select 1" })).StatusCode);
        }
    }

    [Fact]
    public async Task Registration_refuses_short_passwords_and_answers_a_registered_email_as_a_new_one()
    {
        var client = app.Factory.CreateClient();
        var email = $"dup{Guid.NewGuid():N}@example.com";
        Assert.Equal(HttpStatusCode.BadRequest, (await client.PostAsJsonAsync("/api/auth/register", new { email, password = "short" })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync("/api/auth/register", new { email, password = "long enough pw" })).StatusCode);
        // No account enumeration: the same 200 (RegistrationTests compares the answers in full); nothing changes.
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync("/api/auth/register", new { email, password = "long enough pw" })).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await client.PostAsJsonAsync("/api/auth/login", new { email, password = "wrong password" })).StatusCode);
    }

    [Fact]
    public async Task Secrets_are_encrypted_at_rest()
    {
        var client = await app.NewUserClientAsync();
        var p = await TestApp.CreateProjectAsync(client);
        await using var conn = new Npgsql.NpgsqlConnection(app.Db.PlatformConnectionString);
        await conn.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand(
            "SELECT string_agg(\"Protected\" || coalesce(\"Hash\", ''), ' ') FROM platform.project_secrets WHERE \"ProjectId\" = $1", conn);
        cmd.Parameters.Add(new Npgsql.NpgsqlParameter { Value = p.Id });
        var stored = (string)(await cmd.ExecuteScalarAsync())!;
        var password = new Uri(p.ConnectionUrl).UserInfo.Split(':')[1];
        Assert.DoesNotContain(p.AnonKey, stored);
        Assert.DoesNotContain(p.ApiKey, stored);
        Assert.DoesNotContain(password, stored);
    }
}
