using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <summary>
    /// The assistant's conversations (issue 16): one row per message, per project, gone with the project. No EF model
    /// change: Assistant/Conversations reads and writes the table with plain SQL.
    /// </summary>
    [DbContext(typeof(PlatformDbContext))]
    [Migration("20261130080000_AssistantConversations")]
    public class AssistantConversations : Migration
    {
        /// <summary>The SQL as this migration ran it (frozen).</summary>
        internal const string Sql = """
            CREATE TABLE platform.assistant_messages (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                project_id varchar(32) NOT NULL REFERENCES platform.projects ("Id") ON DELETE CASCADE,
                role text NOT NULL CHECK (role IN ('user', 'assistant')),
                content text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE INDEX assistant_messages_project ON platform.assistant_messages (project_id, id);
            """;

        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder) => migrationBuilder.Sql(Sql);

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder) =>
            migrationBuilder.Sql("DROP TABLE platform.assistant_messages;");
    }
}
