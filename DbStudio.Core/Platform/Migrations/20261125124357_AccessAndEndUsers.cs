using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace DbStudio.Core.Platform.Migrations
{
    /// <inheritdoc />
    public partial class AccessAndEndUsers : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "end_users",
                schema: "platform",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    ProjectId = table.Column<string>(type: "character varying(32)", nullable: false),
                    Email = table.Column<string>(type: "character varying(254)", maxLength: 254, nullable: false),
                    NormalizedEmail = table.Column<string>(type: "character varying(254)", maxLength: 254, nullable: false),
                    PasswordHash = table.Column<string>(type: "text", nullable: false),
                    Role = table.Column<string>(type: "character varying(16)", maxLength: 16, nullable: false),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_end_users", x => x.Id);
                    table.ForeignKey(
                        name: "FK_end_users_projects_ProjectId",
                        column: x => x.ProjectId,
                        principalSchema: "platform",
                        principalTable: "projects",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "table_access",
                schema: "platform",
                columns: table => new
                {
                    ProjectId = table.Column<string>(type: "character varying(32)", nullable: false),
                    TableName = table.Column<string>(type: "character varying(63)", maxLength: 63, nullable: false),
                    AnonSelect = table.Column<bool>(type: "boolean", nullable: false),
                    AnonInsert = table.Column<bool>(type: "boolean", nullable: false),
                    AuthInsert = table.Column<bool>(type: "boolean", nullable: false),
                    AuthSelectOwn = table.Column<bool>(type: "boolean", nullable: false),
                    AuthUpdateOwn = table.Column<bool>(type: "boolean", nullable: false),
                    AuthDeleteOwn = table.Column<bool>(type: "boolean", nullable: false),
                    UserIdColumn = table.Column<string>(type: "text", nullable: true),
                    UpdatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_table_access", x => new { x.ProjectId, x.TableName });
                    table.ForeignKey(
                        name: "FK_table_access_projects_ProjectId",
                        column: x => x.ProjectId,
                        principalSchema: "platform",
                        principalTable: "projects",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "end_user_sessions",
                schema: "platform",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "uuid", nullable: false),
                    ProjectId = table.Column<string>(type: "text", nullable: false),
                    UserId = table.Column<Guid>(type: "uuid", nullable: false),
                    FamilyId = table.Column<Guid>(type: "uuid", nullable: false),
                    AccessTokenHash = table.Column<string>(type: "text", nullable: false),
                    RefreshTokenHash = table.Column<string>(type: "text", nullable: false),
                    AccessExpiresAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    RefreshExpiresAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false),
                    RevokedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: true),
                    CreatedAt = table.Column<DateTimeOffset>(type: "timestamp with time zone", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_end_user_sessions", x => x.Id);
                    table.ForeignKey(
                        name: "FK_end_user_sessions_end_users_UserId",
                        column: x => x.UserId,
                        principalSchema: "platform",
                        principalTable: "end_users",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_end_user_sessions_AccessTokenHash",
                schema: "platform",
                table: "end_user_sessions",
                column: "AccessTokenHash",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_end_user_sessions_FamilyId",
                schema: "platform",
                table: "end_user_sessions",
                column: "FamilyId");

            migrationBuilder.CreateIndex(
                name: "IX_end_user_sessions_RefreshTokenHash",
                schema: "platform",
                table: "end_user_sessions",
                column: "RefreshTokenHash",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_end_user_sessions_UserId",
                schema: "platform",
                table: "end_user_sessions",
                column: "UserId");

            migrationBuilder.CreateIndex(
                name: "IX_end_users_ProjectId_NormalizedEmail",
                schema: "platform",
                table: "end_users",
                columns: new[] { "ProjectId", "NormalizedEmail" },
                unique: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "end_user_sessions",
                schema: "platform");

            migrationBuilder.DropTable(
                name: "table_access",
                schema: "platform");

            migrationBuilder.DropTable(
                name: "end_users",
                schema: "platform");
        }
    }
}
